"""One implementation's train step and inference on a fixed batch, and the
guarded warm-up that leaves out an implementation that cannot run."""
import math
import sys
from typing import Dict, Optional

import torch

from . import NAMES, NUM_STUFF, NUM_THINGS
from .batch import hf_targets, synthetic_batch
from .models import build_hf, build_mmdet_pair
from .optim import build_optimizer, clip_gradients
from .precision import amp_mode, autocast, grad_scaler
from .timing import synchronizer


class Bench:
    """One implementation's train step and inference on a fixed batch.

    Args:
        name: 'm2f_mm', 'mmdet' or 'hf'.
        model: its model, on the batch's device.
        inputs, samples: the batch (see :func:`synthetic_batch`).
        lr: AdamW's learning rate (``optimizer='plain'``).
        optimizer: ``'plain'`` (one AdamW, the same for all) or ``'config'``
            (each implementation's config: its parameter groups and gradient
            clipping); see ``bench/optim.py``. The AdamW is the multi-tensor
            (``foreach``) one, CUDA's default, on every device, so that the
            top-level op count of a step on CPU (``--count-ops``) shows the
            few multi-tensor kernels a GPU launches (CPU's foreach still
            loops over the parameters underneath: the nested count).
        infer_batch: inference runs on the first ``infer_batch`` images.
        amp: None / 'none' (fp32), 'fp16' or 'bf16': forward and loss (and
            inference) under autocast; fp16 steps through a GradScaler.
    """

    def __init__(self, name: str, model, inputs, samples, lr: float = 1e-4,
                 infer_batch: Optional[int] = None, amp: Optional[str] = None,
                 optimizer: str = 'plain'):
        self.name = name
        self.model = model
        self.inputs = inputs
        self.samples = samples
        self.infer_batch = infer_batch or len(inputs)  # the first images
        self.amp = amp_mode(amp)
        self.scaler = grad_scaler(inputs.device, self.amp)
        self.losses = []  # of every train step, to report NaN / inf
        self.optimizer, self.clip = build_optimizer(name, model, optimizer, lr)
        if name == 'hf':
            self.hf_masks, self.hf_labels = hf_targets(samples, inputs.device)
            from transformers import Mask2FormerImageProcessor
            self.processor = Mask2FormerImageProcessor(
                num_labels=NUM_THINGS + NUM_STUFF, do_resize=False,
                do_rescale=False, do_normalize=False)

    def autocast(self):
        return autocast(self.inputs.device, self.amp)

    def loss(self) -> torch.Tensor:
        if self.name == 'hf':
            return self.model(pixel_values=self.inputs, mask_labels=self.hf_masks,
                              class_labels=self.hf_labels).loss
        # the total as mmengine's train_step takes it (the model's own
        # parse_losses), so that its ops are counted too
        return self.model.parse_losses(self.model.loss(self.inputs, self.samples))[0]

    def backward(self, loss: torch.Tensor) -> None:
        """The loss's backward; in fp16 of the GradScaler's scaled loss."""
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()

    def optimizer_step(self) -> None:
        """The config's gradient clipping (``optimizer='config'``), an AdamW
        step (in fp16 through the GradScaler, which skips the step when a
        gradient is not finite) and the gradients cleared."""
        clip_gradients(self.optimizer, self.clip, self.scaler)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, loss: torch.Tensor) -> None:
        """Backward, then :meth:`optimizer_step`."""
        self.backward(loss)
        self.optimizer_step()

    def train_step(self) -> float:
        """Forward, losses, backward and an AdamW step; returns the loss."""
        self.model.train()
        with self.autocast():
            loss = self.loss()
        self.step(loss)
        value = loss.detach().float().item()
        self.losses.append(value)
        return value

    def nonfinite_losses(self) -> str:
        """'' when every train step's loss was finite, else e.g. 'NaN loss
        in 3 of 4 train steps, from step 1'."""
        bad = [i for i, v in enumerate(self.losses, 1) if not math.isfinite(v)]
        if not bad:
            return ''
        kind = 'NaN' if any(math.isnan(self.losses[i - 1]) for i in bad) else 'inf'
        return (f'{kind} loss in {len(bad)} of {len(self.losses)} train steps, '
                f'from step {bad[0]}')

    @torch.no_grad()
    def predict(self):
        """Inference with panoptic fusion (and MMDet's instance results)."""
        self.model.eval()
        inputs = self.inputs[:self.infer_batch]
        with self.autocast():
            if self.name == 'hf':
                out = self.model(pixel_values=inputs)
                size = tuple(inputs.shape[-2:])
                return self.processor.post_process_panoptic_segmentation(
                    out, threshold=0.8, overlap_mask_area_threshold=0.8,
                    target_sizes=[size] * len(inputs))
            samples = [s.clone() for s in self.samples[:self.infer_batch]]
            return self.model.predict(inputs, samples)


def build_benches(impls, size, batch, device='cpu', small=False, seed=0,
                  infer_batch=None, amp=None, optimizer='plain') -> Dict[str, Bench]:
    """A :class:`Bench` per implementation in ``impls``, all on the same
    batch; ours gets MMDet's weights."""
    inputs, samples = synthetic_batch(size, batch, seed=seed, device=device)
    benches = {}
    if 'm2f_mm' in impls or 'mmdet' in impls:
        ours, ref = build_mmdet_pair(seed, small, device)
        if 'm2f_mm' in impls:
            benches['m2f_mm'] = Bench('m2f_mm', ours, inputs, samples,
                                      infer_batch=infer_batch, amp=amp, optimizer=optimizer)
        if 'mmdet' in impls:
            benches['mmdet'] = Bench('mmdet', ref, inputs, samples,
                                     infer_batch=infer_batch, amp=amp, optimizer=optimizer)
    if 'hf' in impls:
        benches['hf'] = Bench('hf', build_hf(seed, small, device), inputs, samples,
                              infer_batch=infer_batch, amp=amp, optimizer=optimizer)
    return benches


def one_line(error: BaseException, limit: int = 300) -> str:
    """'Type: the first line of the message', at most ``limit`` characters."""
    lines = str(error).strip().splitlines()
    text = f'{type(error).__name__}: {lines[0] if lines else ""}'.rstrip(': ')
    return text if len(text) <= limit else text[:limit - 1] + '…'


def warm_up(benches: Dict[str, Bench], method: str, rounds: int = 1
            ) -> Dict[str, str]:
    """The untimed rounds before timing, alternating like the timed ones.

    An implementation whose call raises (mmcv's deformable-attention kernel
    has no bf16, say) is not called again: one line on stderr,
    ``NAME failed under AMP: <error>`` (or ``NAME failed: ...`` in fp32),
    and it is returned as {impl: error} for the caller to leave out of the
    timings and mark in the table.

    Args:
        benches: the implementations.
        method: 'train_step' or 'predict'.
        rounds: warm-up rounds (at least one, so that every failure is
            caught here and not inside the timed rounds).
    """
    failed = {}
    for _ in range(max(rounds, 1)):
        for impl, bench in benches.items():
            if impl in failed:
                continue
            sync = synchronizer(bench.inputs.device)
            try:
                getattr(bench, method)()
                sync()  # an asynchronous CUDA error surfaces here, not later
            except Exception as e:  # noqa: BLE001  (any failure leaves it out)
                failed[impl] = one_line(e)
                bench.optimizer.zero_grad(set_to_none=True)
                under = ' under AMP' if bench.amp else ''
                print(f'{NAMES[impl]} failed{under}: {failed[impl]}',
                      file=sys.stderr, flush=True)
    return failed
