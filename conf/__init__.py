"""Stratos' Hydra configuration, shipped in the package as `stratos.conf` (Hydra: `pkg://stratos.conf`).

The folder lives at the top level of the repository (`conf/`, the layout Hydra users know);
`stratos/conf` is a symlink to it, so an editable install, a source checkout and a built wheel
all find the same files through the package.
"""
