"""Start the rest of the pipeline on the server the planner chose, through existing engines.

`command` builds the `python -m stratos ...` line every engine runs; `slurm` submits it with
submitit; `sky` (optional extra `cloud`) hands it to SkyPilot. Nothing here decides *what* to run:
the CLI passes the overrides and stages, this package only starts them somewhere else.
"""
