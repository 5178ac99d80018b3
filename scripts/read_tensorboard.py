#!/usr/bin/env python3
"""Reads a TensorBoard log directory with TensorBoard's own EventAccumulator and prints JSON:

    {"scalars": {tag: [[step, value], ...]}, "text": {tag: [[step, "text"], ...]}}

The NanoTracking tests use it to check that the Swift event writer's files read back in
TensorBoard. Needs `pip install tensorboard` (numpy comes with it).

usage: read_tensorboard.py LOG_DIR
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util


def read(log_dir):
    # A size guidance of 0 keeps every event instead of a reservoir sample.
    guidance = {kind: 0 for kind in event_accumulator.DEFAULT_SIZE_GUIDANCE}
    acc = event_accumulator.EventAccumulator(log_dir, size_guidance=guidance)
    acc.Reload()
    tags = acc.Tags()
    scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in tags["scalars"]}
    text = {}
    for tag in tags["tensors"]:
        # Only tensors the text plugin claims: that is what puts them on TensorBoard's Text tab.
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
            continue
        rows = []
        for e in acc.Tensors(tag):
            strings = tensor_util.make_ndarray(e.tensor_proto).flatten()
            rows.append([e.step, "\n".join(s.decode("utf-8") for s in strings)])
        text[tag] = rows
    return {"scalars": scalars, "text": text}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(read(sys.argv[1]), ensure_ascii=False))
