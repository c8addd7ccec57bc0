"""The parts of ``tools/benchmark.py``: ours against MMDetection 3.3's and
Hugging Face's Mask2Former, on a seeded synthetic batch.

=================  ===========================================================
``batch``          the synthetic batch and HF's targets for it
``models``         model configs; MMDet's model and ours with its weights; HF's
``precision``      ``--amp`` (autocast, GradScaler) and ``--tf32``
``runner``         one implementation's train step and inference (``Bench``)
``optim``          its optimizer: one AdamW for all, or each one's config
``equality``       how far our outputs are from MMDet's on shared weights
``timing``         alternating, CUDA-synchronised timings; ratios; medians
``memory``         peak RSS / CUDA memory, each implementation in a subprocess
``report``         the Markdown tables and the whole benchmark run
``profiling``      our train step by stage and by op
``onnx_report``    onnxruntime CPU against our PyTorch inference
``compiled``       our model under ``torch.compile`` against eager
=================  ===========================================================
"""
import os.path as osp
import sys

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TOOLS)
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(1, REPO)
CLI = osp.join(TOOLS, 'benchmark.py')  # the memory subprocesses run it
OURS_CONFIG = osp.join(REPO, 'configs', 'mask2former_r50_coco-panoptic.py')
MMDET_CONFIG = osp.join('mask2former', 'mask2former_r50_8xb2-lsj-50e_coco-panoptic.py')
NAMES = {'m2f_mm': 'm2f_mm (ours)', 'mmdet': 'MMDetection 3.3',
         'hf': 'HF transformers'}
NUM_THINGS, NUM_STUFF = 80, 53
