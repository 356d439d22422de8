"""Latency estimates for devices we cannot run on: a roofline over the ONNX graph.

Method: run the graph once with ONNX Runtime at the concrete batch and sequence length to
learn every tensor's shape, count each node's FLOPs (or int8 ops) and the bytes it reads and
writes, and charge it

    time = max(ops / (peak x efficiency), bytes / bandwidth) + kernel overhead

against a device profile (`benchmarks/profiles/*.yaml`, every figure with its source, the
assumed ones marked). The result is an estimate and is always labelled so. How far to trust
it is measured in every run: `compressor benchmark <run> --target arm` also estimates this
machine from its measured SGEMM rate and copy bandwidth (`host_profile`) and puts that next
to the same files' measured p50 (the report's "Method check on this host" lines).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml

from compressor.errors import UserError

PROFILES = Path(__file__).resolve().parent / "profiles"
# ops that only relabel a buffer: no arithmetic, no traffic worth charging
VIEWS = {"Reshape", "Shape", "Unsqueeze", "Squeeze", "Constant", "Identity", "Flatten",
         "ConstantOfShape", "Expand", "Range", "Cast", "Equal", "Where", "Not"}  # fmt: skip
# matrix products of a float graph; quantized files add their own (`_matmul_kinds`)
FLOAT_MATMULS = frozenset({"MatMul", "Gemm", "FusedMatMul"})
# arithmetic per output element of the non-matmul ops BERT uses (a count, not a cost model)
ELEMENTWISE_OPS = {"Softmax": 5, "LayerNormalization": 8, "SkipLayerNormalization": 9,
                   "Erf": 8, "Gelu": 8, "FastGelu": 8, "BiasGelu": 9, "Tanh": 8, "Sqrt": 1,
                   "Pow": 1, "Div": 1, "Mul": 1, "Add": 1, "Sub": 1, "ReduceMean": 1}  # fmt: skip
# an LSTM cell's arithmetic per hidden unit and step besides its two products: per gate the
# two products' sum and two biases (4 x 3), 3 sigmoids and 2 tanh at Tanh's count, then
# c = f*c + i*g (3) and h = o*tanh(c) (1)
LSTM_CELL_OPS = 4 * 3 + 5 * ELEMENTWISE_OPS["Tanh"] + 3 + 1


@dataclass(frozen=True)
class DeviceProfile:
    """Peak rates of one device, with where each figure comes from."""

    key: str
    name: str
    cores: int
    clock_ghz: float
    fp32_flops_per_cycle: float
    int8_ops_per_cycle: float
    bandwidth_gbs: float
    efficiency: float
    kernel_overhead_us: float
    sources: list[str] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)

    def peak_gflops(self, threads: int, int8: bool = False) -> float:
        per_cycle = self.int8_ops_per_cycle if int8 else self.fp32_flops_per_cycle
        return min(threads, self.cores) * self.clock_ghz * per_cycle


def load_profile(key: str) -> DeviceProfile:
    path = PROFILES / f"{key}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES.glob("*.yaml"))
        raise UserError(f"no device profile {key!r} — use one of {known}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return DeviceProfile(key=key, **raw)


@dataclass(frozen=True)
class NodeCost:
    op: str
    ops: float
    bytes: float
    int8: bool


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> float:
    return float(math.prod(shape)) * np.dtype(dtype).itemsize


def tensor_shapes(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """name -> (shape, dtype) of every tensor at these inputs, by running the graph once with
    every node output exposed (static shape inference cannot resolve this export's Reshapes)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    declared = {o.name for o in probe.graph.output}
    names = [o for n in probe.graph.node for o in n.output if o and o not in declared]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    outputs = [o.name for o in session.get_outputs()]
    values = session.run(outputs, dict(feeds))
    shapes = {name: (arr.shape, arr.dtype) for name, arr in zip(outputs, values, strict=True)}
    shapes.update({name: (arr.shape, arr.dtype) for name, arr in feeds.items()})
    for init in model.graph.initializer:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        shapes[init.name] = (tuple(init.dims), dtype)
    return shapes


@dataclass(frozen=True)
class _MatMulKinds:
    float_ops: frozenset[str]
    int8_ops: frozenset[str]
    qdq: bool


@functools.cache
def _matmul_kinds() -> _MatMulKinds:
    """Which op types multiply matrices and at which rate: each quantization mode states it
    for the ops of its files (exporters.quant), so a new mode needs no edit here."""
    from exporters.quant import all_modes

    modes = all_modes()
    return _MatMulKinds(
        float_ops=FLOAT_MATMULS.union(*(mode.float_matmul_ops for mode in modes)),
        int8_ops=frozenset().union(*(mode.int8_matmul_ops for mode in modes)),
        qdq=any(mode.qdq_matmuls for mode in modes),
    )


def _qdq_fusions(graph: onnx.GraphProto, kinds: _MatMulKinds) -> tuple[set[str], set[str]]:
    """Float matrix products whose operands both come out of DequantizeLinear, which ONNX
    Runtime runs as one integer kernel on the quantized tensors, and the DequantizeLinear
    nodes folded into them (every consumer such a product). Nodes by their first output."""
    if not kinds.qdq:
        return set(), set()
    producers = {out: node for node in graph.node for out in node.output}
    fused = {
        node.output[0]
        for node in graph.node
        if node.op_type in kinds.float_ops
        and len(node.input) >= 2
        and all(
            n in producers and producers[n].op_type == "DequantizeLinear" for n in node.input[:2]
        )
    }
    users: dict[str, set[str]] = {o.name: {"graph output"} for o in graph.output}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, set()).add(node.output[0])
    # one that feeds anything else, a graph output or nothing stays a node of its own
    folded = {
        node.output[0]
        for node in graph.node
        if node.op_type == "DequantizeLinear" and users.get(node.output[0], {""}) <= fused
    }
    return fused, folded


def node_costs(model: onnx.ModelProto, shapes: Mapping[str, Any]) -> list[NodeCost]:
    """Arithmetic and memory traffic of each node at the probed shapes; a fused QDQ product
    reads the quantized tensors, not their dequantized copies. Recurrences, convolutions and
    pools are counted from their weights and kernels (SHAPED_OPS), not per output element."""
    kinds = _matmul_kinds()
    fused, folded = _qdq_fusions(model.graph, kinds)
    dequantized = {n.output[0]: n.input[0] for n in model.graph.node if n.output[0] in folded}
    costs = []
    for node in model.graph.node:
        if node.op_type in VIEWS or node.output[0] in folded:
            continue
        ins = [shapes[dequantized.get(n, n)] for n in node.input if n and n in shapes]
        outs = [shapes[n] for n in node.output if n and n in shapes]
        if not outs:
            continue
        traffic = sum(_nbytes(s, d) for s, d in ins + outs)
        out_elems = float(math.prod(outs[0][0]))
        if node.op_type == "Gather":  # an embedding lookup reads the rows it returns
            traffic = 2 * sum(_nbytes(s, d) for s, d in outs)
        if node.op_type in SHAPED_OPS:
            ops = SHAPED_OPS[node.op_type](node, shapes, out_elems)
            costs.append(NodeCost(node.op_type, ops, traffic, node.op_type in INT8_SHAPED_OPS))
        elif node.op_type in kinds.float_ops or node.op_type in kinds.int8_ops:
            depth = _reduction_depth(node, ins)
            int8 = node.op_type in kinds.int8_ops or node.output[0] in fused
            costs.append(NodeCost(node.op_type, 2.0 * out_elems * depth, traffic, int8))
        else:
            per = ELEMENTWISE_OPS.get(node.op_type, 1)
            costs.append(NodeCost(node.op_type, per * out_elems, traffic, False))
    return costs


def _reduction_depth(node: onnx.NodeProto, ins: list[tuple[tuple[int, ...], Any]]) -> int:
    """K of an (M x K) @ (K x N) product: the last axis of the first input."""
    if node.op_type == "MatMulNBits":
        return int(_attrs(node)["K"])
    if node.op_type == "QLinearMatMul":
        return int(ins[0][0][-1])
    first = ins[0][0]
    if node.op_type == "Gemm":
        return int(first[0] if _attrs(node).get("transA", 0) else first[-1])
    return int(first[-1])


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _lstm_ops(node: onnx.NodeProto, shapes: Mapping[str, Any], out_elems: float) -> float:
    """Per direction, step and batch row: the 4 gates' x W^T + h R^T, 2 x 4 x hidden x
    (input + hidden), and LSTM_CELL_OPS per hidden unit, over the full sequence (padded steps
    run too). Read from X and W, as Y may be left out: X is [seq, batch, input] or, with
    layout 1, [batch, seq, input], the same product; W is [directions, 4 x hidden, input],
    but [directions, input, 4 x hidden] in DynamicQuantizeLSTM (com.microsoft), which keeps
    LSTM's input order X, W, R, B, ... and adds the weights' scales and zero points. Its float
    gate arithmetic is charged at the node's int8 rate: one kernel, one cost."""
    x, w = shapes[node.input[0]][0], shapes[node.input[1]][0]
    gates = w[2] if node.op_type == "DynamicQuantizeLSTM" else w[1]
    hidden = int(_attrs(node).get("hidden_size", gates // 4))
    per_unit = 2 * 4 * (x[2] + hidden) + LSTM_CELL_OPS
    return float(w[0] * x[0] * x[1] * hidden * per_unit)


def _conv_ops(node: onnx.NodeProto, shapes: Mapping[str, Any], out_elems: float) -> float:
    """2 x in_channels/group x kernel per output element: W is [out, in/group, *kernel] for
    Conv and ConvInteger alike. Dilation and stride move the taps, not their number."""
    return 2.0 * out_elems * math.prod(shapes[node.input[1]][0][1:])


def _pool_ops(node: onnx.NodeProto, shapes: Mapping[str, Any], out_elems: float) -> float:
    """One compare or add per window element of each output."""
    return out_elems * math.prod(_attrs(node)["kernel_shape"])


# ops whose count follows from their weights or kernel, not from the output alone; of them,
# those ONNX Runtime runs as integer kernels (the dynamic int8 files')
INT8_SHAPED_OPS = frozenset({"DynamicQuantizeLSTM", "ConvInteger"})
SHAPED_OPS = {"LSTM": _lstm_ops, "DynamicQuantizeLSTM": _lstm_ops, "Conv": _conv_ops,
              "ConvInteger": _conv_ops, "MaxPool": _pool_ops, "AveragePool": _pool_ops}  # fmt: skip


def estimate_ms(costs: list[NodeCost], profile: DeviceProfile, threads: int) -> dict[str, float]:
    """Total estimated time and how much of it is compute- vs memory-bound."""
    compute_ms = memory_ms = total_ms = 0.0
    bandwidth = profile.bandwidth_gbs * 1e9
    for cost in costs:
        peak = profile.peak_gflops(threads, cost.int8) * 1e9 * profile.efficiency
        t_compute, t_memory = cost.ops / peak, cost.bytes / bandwidth
        total_ms += 1e3 * max(t_compute, t_memory) + profile.kernel_overhead_us / 1e3
        if t_compute >= t_memory:
            compute_ms += 1e3 * t_compute
        else:
            memory_ms += 1e3 * t_memory
    return {
        "estimate_ms": total_ms,
        "compute_bound_ms": compute_ms,
        "memory_bound_ms": memory_ms,
        "gflop": sum(c.ops for c in costs if not c.int8) / 1e9,
        "int8_gop": sum(c.ops for c in costs if c.int8) / 1e9,
        "mbytes": sum(c.bytes for c in costs) / 1e6,
        "nodes": len(costs),
    }


def graph_costs(onnx_path: Path, batch: int, seq_len: int) -> list[NodeCost]:
    """Node costs of one ONNX file at batch x seq_len (ids drawn as the latency worker does)."""
    import json

    from benchmarks.latency_worker import synthetic_inputs
    from compressor.layout import package_root

    model = onnx.load(str(onnx_path))
    config = json.loads((package_root(onnx_path) / "config.json").read_text(encoding="utf-8"))
    names = [i.name for i in model.graph.input]
    feeds = synthetic_inputs(int(config["vocab_size"]), batch, seq_len, names)
    return node_costs(model, tensor_shapes(model, feeds))


def host_profile(threads: int) -> DeviceProfile:
    """This machine as a profile, its peak and bandwidth measured, so the method's error can
    be checked here against measured latency before it is trusted on a device we lack."""
    import json
    import subprocess
    import sys

    from benchmarks.latency import worker_env

    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.roofline", str(threads)],
        capture_output=True, text=True, env=worker_env(threads), check=True,
    )  # fmt: skip
    rates = json.loads(proc.stdout.splitlines()[-1])
    return DeviceProfile(
        key="host",
        name=f"this machine, {threads} thread(s), measured",
        cores=threads,
        clock_ghz=1.0,
        fp32_flops_per_cycle=rates["sgemm_gflops"] / threads,
        int8_ops_per_cycle=2 * rates["sgemm_gflops"] / threads,
        bandwidth_gbs=rates["copy_gbs"],
        efficiency=1.0,
        kernel_overhead_us=5.0,
        sources=["numpy SGEMM 1024^3 and a 256 MB copy, timed in a fresh process"],
        assumed=["int8 peak 2x the measured SGEMM rate", "kernel_overhead_us 5"],
    )


def _measure_rates() -> dict[str, float]:
    import time

    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a, time.perf_counter) for _ in range(5))
    big = np.ones(32 * 2**20, dtype=np.float64)  # 256 MB, far beyond any cache
    out = np.empty_like(big)
    copy = min(_timed(lambda: np.copyto(out, big), time.perf_counter) for _ in range(3))
    return {"sgemm_gflops": 2 * 1024**3 / best / 1e9, "copy_gbs": 2 * big.nbytes / copy / 1e9}


def _timed(call: Any, clock: Any) -> float:
    start = clock()
    call()
    return clock() - start


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps({"threads": int(sys.argv[1]), **_measure_rates()}))
