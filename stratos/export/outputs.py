"""The export stage's artifact contract: the names of what it writes (serve and report read these)."""

HF_DIR = "hf"  # the merged HF checkpoint, loadable by transformers 4.x/5.x, vLLM and stratos.serve
ONNX_DIR = "onnx"  # deploy=onnx: the ONNX graph (KV cache) + tokenizer + stratos_onnx.json
VLLM_DIR = "vllm"  # deploy=vllm: `vllm serve` command, sbatch script
EXPORT_JSON = "export.json"  # everything the report shows under "deploy"
