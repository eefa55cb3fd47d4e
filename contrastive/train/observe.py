"""How fast a run goes and where the time goes: each log interval's step time split into data
wait and the rest, examples/s per device, model-FLOPs utilisation (MFU), and a jax.profiler
trace of chosen steps.

MFU (PaLM, Chowdhery et al. 2022, appendix B) = FLOPs of one step / (step time x peak FLOP/s).
The FLOPs are XLA's cost analysis of the compiled train step the loop runs, per device (the
program each device executes): forward, backward and optimiser update, plus any forward that
model.remat recomputes (with remat on the figure is hardware-FLOPs utilisation); the peak is the
dense bf16 one whatever the compute dtype. XLA counts a while loop's body once, so with scanned
towers or contrastive gradient accumulation (both lax loops) the count would be low and MFU is
reported unknown; the loss engine's tile loops are counted once too, a few N x N x d matmuls,
small beside the towers.
"""
import logging
import os
import time

import jax

log = logging.getLogger(__name__)

# Peak dense bf16 FLOP/s of one JAX device (a chip; v4 and v5p as one megacore device).
# TPUs by their exact device_kind (as libtpu names them; experiments/pod_compile.py reads this
# table too), from Google Cloud's TPU pages (cloud.google.com/tpu/docs/v4, v5e, v5p, v6e):
TPU_PEAK_FLOPS = {
    "TPU v4": 275e12,  # v4: 275 TFLOPs bf16 per chip
    "TPU v5 lite": 197e12,  # v5e: 197 TFLOPs bf16 per chip
    "TPU v5": 459e12,  # v5p: 459 TFLOPs bf16 per chip
    "TPU v6 lite": 918e12,  # v6e (Trillium): 918 TFLOPs bf16 per chip
}
# GPUs by the first name their device_kind contains ("NVIDIA H100 80GB HBM3"). NVIDIA's data
# sheets quote bf16 Tensor Core FLOPS "with sparsity"; the dense peak is half of it.
GPU_PEAK_FLOPS = {
    "H100 PCIe": 756e12,  # H100 data sheet: 1,513 TFLOPS sparse
    "H100 NVL": 835e12,  # H100 data sheet: 1,671 TFLOPS sparse
    "H100": 989e12,  # H100 SXM data sheet: 1,979 TFLOPS sparse
    "H200 NVL": 835e12,  # H200 data sheet: 1,671 TFLOPS sparse
    "H200": 989e12,  # H200 SXM data sheet: 1,979 TFLOPS sparse
    "A100": 312e12,  # A100 data sheet: 312 TFLOPS dense bf16 (SXM and PCIe)
}


def peak_flops(device_kind: str) -> float | None:
    """The device's peak dense bf16 FLOP/s, or None for a kind in neither table (cpu, ...)."""
    if device_kind in TPU_PEAK_FLOPS:
        return TPU_PEAK_FLOPS[device_kind]
    return next((peak for name, peak in GPU_PEAK_FLOPS.items() if name in device_kind), None)


def step_flops(compiled) -> float | None:
    """FLOPs per device of one call of a compiled (jax AOT) function, from XLA's cost
    analysis; None where the backend offers none."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # pylint: disable=broad-except  (a backend without a cost model)
        return None
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def loops_hide_flops(config) -> bool:
    """Whether the step's FLOPs sit in lax loops XLA's cost analysis counts once."""
    scanned = any(dict(config.model[towers]).get("scan")
                  for towers in ("image_options", "text_options"))
    return scanned or config.num_microbatches > 1


class Meter:
    """Per-interval timing of finished steps: the loop measures each step's wait in
    next(iterator) and the interval's wall time up to fetching its metrics (which waits for
    the steps to finish), so no extra synchronisation is needed."""

    def __init__(self, config, mesh, compiled):
        self.batch_size = config.batch_size
        self.devices = mesh.size
        self.kind = mesh.devices.flat[0].device_kind
        self.peak = peak_flops(self.kind)
        self.flops = None if loops_hide_flops(config) else step_flops(compiled)
        why = ("" if self.peak else f"no peak FLOP/s for device kind {self.kind!r}; ") + \
            ("" if self.flops else "no FLOP count (scanned towers, micro-batches or no cost model)")
        log.info("step FLOPs per device %s, peak %s per device: MFU %s", self.flops, self.peak,
                 "unknown: " + why.rstrip("; ") if why else "measured")

    def timing(self, data_waits: list[float], interval_s: float) -> dict:
        """Fields of every line of an interval of len(data_waits) steps taking interval_s."""
        steps, waited = len(data_waits), sum(data_waits)
        step_s = interval_s / steps
        rate = steps * self.batch_size / interval_s
        achieved = self.flops / step_s if self.flops else None
        return {
            "examples_per_sec": rate,
            "examples_per_sec_per_device": rate / self.devices,
            "step_time_s": step_s,  # wall time per step, data wait included
            "device_time_s": max(interval_s - waited, 0.0) / steps,  # the rest: not waiting
            "data_wait_share": min(waited / interval_s, 1.0),
            "tflops_per_device": achieved / 1e12 if achieved else None,
            "mfu": achieved / self.peak if achieved and self.peak else None,
        }

    @staticmethod
    def postfix(timing: dict) -> dict:
        """The progress bar's share of it."""
        mfu = timing["mfu"]
        return {"ex_per_s": f"{timing['examples_per_sec']:.0f}",
                "wait": f"{timing['data_wait_share']:.0%}",
                "mfu": "unknown" if mfu is None else f"{mfu:.1%}"}


def parse_profile_steps(spec: str) -> tuple[int, int] | None:
    """"START:END" -> (START, END): trace steps START..END-1 (a Python range); "" -> None."""
    if not spec:
        return None
    start, colon, end = str(spec).partition(":")
    try:
        first, stop = int(start), int(end)
    except ValueError:
        first, stop = 0, 0
    if not colon or not 1 <= first < stop:
        raise ValueError(f"config.profile_steps must be 'START:END' with 1 <= START < END "
                         f"(e.g. '20:25' traces steps 20 to 24), got {spec!r}")
    return first, stop


class Profiler:
    """A jax.profiler trace of the steps `profile_steps` names, into logdir/plugins/profile/:
    an .xplane.pb for TensorBoard's profile tab (pip install tensorboard-plugin-profile) and a
    .trace.json.gz for ui.perfetto.dev. Every process traces its own host, process i > 0 into
    logdir/process_i (files are named by host, and processes may share one)."""

    def __init__(self, profile_steps: str, logdir: str):
        self.steps = parse_profile_steps(profile_steps)
        index = jax.process_index()
        self.logdir = os.path.join(logdir, f"process_{index}") if index else logdir
        self.active = False

    def before(self, step: int) -> None:
        """Called before `step` runs: starts the trace at the range's first step (or the
        first step a resumed run runs inside the range)."""
        if self.steps and not self.active and self.steps[0] <= step < self.steps[1]:
            jax.profiler.start_trace(self.logdir, create_perfetto_trace=True)
            self.active = True

    def after(self, step: int, state, last: bool = False) -> float:
        """Called after `step` was dispatched: stops once the range's last step (or the run's,
        `last`) has finished on the device. Returns the seconds spent writing the trace (not
        step time)."""
        if not (self.active and (last or step >= self.steps[1] - 1)):
            return 0.0
        jax.block_until_ready(state)  # the traced steps' device work, not just dispatch
        started = time.time()
        jax.profiler.stop_trace()
        self.active, self.steps = False, None  # once per run
        return time.time() - started

