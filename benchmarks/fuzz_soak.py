"""Fuzz soak of the `.osc` reader and of the whole decode path (not part of the test suite: it runs minutes).

1. `--containers N` random and mutated files through `bitstream.read_container` (no model).
2. `--decodes N` mutated streams whose CRC is recomputed (so the damage reaches the codec and the entropy
   decoder) through `api.decompress` with the small model committed in tests/fixtures/v1.

Every input runs under a time limit (SIGALRM); anything other than a `OneStepError` (the project's own) or a
hang is a failure, recorded with the input's bytes (hex). Writes a JSON report: counts, the exception
classes seen with counts, the slowest input of each kind, the machine.

    python benchmarks/fuzz_soak.py --containers 1000000 --decodes 10000 -o benchmarks/fuzz-soak.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import signal
import struct
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "v1"


class Hang(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise Hang


def _recrc(data: bytes) -> bytes:
    body = data[:-4] if len(data) >= 4 else data
    return body + struct.pack(">I", zlib.crc32(body))


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One of several kinds of damage, sometimes several at once."""
    data = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        kind = rng.randrange(7)
        if kind == 0 and data:  # flip bits
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:  # set a byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:  # cut
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 3:  # insert bytes
            at = rng.randrange(len(data) + 1)
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif kind == 4 and len(data) > 1:  # delete a run
            at = rng.randrange(len(data))
            del data[at : at + rng.randrange(1, 9)]
        elif kind == 5 and len(data) > 8:  # an extreme 32-bit field somewhere
            at = rng.randrange(len(data) - 4)
            data[at : at + 4] = rng.choice((b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff"))
        elif kind == 6 and len(data) > 16:  # scramble a payload region
            at = rng.randrange(len(data) // 2, len(data))
            data[at:] = bytes(rng.randrange(256) for _ in range(len(data) - at))
    return bytes(data)


def mutate_payload(rng: random.Random, data: bytes, payload_start: int) -> bytes:
    """Damage inside the sections only, keeping every length: the header checks pass and the codec and the
    entropy decoder get the damage."""
    data = bytearray(data)
    if len(data) - 4 <= payload_start:
        return bytes(data)
    for _ in range(rng.choice((1, 1, 2, 4, 16))):
        at = rng.randrange(payload_start, len(data) - 4)
        data[at] = rng.randrange(256) if rng.random() < 0.5 else data[at] ^ (1 << rng.randrange(8))
    return bytes(data)


def soak(inputs, run, limit_s: float, expected: tuple[type[BaseException], ...]) -> dict:
    seen: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    failures: list[dict] = []
    slowest = (0.0, b"")
    count = 0
    for data in inputs:
        count += 1
        signal.setitimer(signal.ITIMER_REAL, limit_s)
        start = time.perf_counter()
        try:
            run(data)
            seen["accepted"] += 1
        except Hang:
            seen["Hang"] += 1
            failures.append({"kind": "hang", "input": data.hex()})
        except expected as e:
            seen[type(e).__name__] += 1
            messages[str(e)[:48]] += 1
        except Exception as e:  # what the soak exists to find
            seen[type(e).__name__] += 1
            failures.append({"kind": f"{type(e).__name__}: {e}"[:300], "input": data.hex()})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.perf_counter() - start
        if elapsed > slowest[0]:
            slowest = (elapsed, data)
    return {
        "inputs": count,
        "outcomes": dict(seen.most_common()),
        "most_common_messages": dict(messages.most_common(12)),
        "failures": len(failures),
        "failure_examples": failures[:20],
        "slowest_seconds": round(slowest[0], 6),
        "slowest_input_hex": slowest[1][:200].hex(),
        "time_limit_seconds": limit_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=1_000_000)
    parser.add_argument("--decodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "fuzz-soak.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from onestep import api
    from onestep.bitstream import read_container
    from onestep.errors import OneStepError

    signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(args.seed)
    model = api.load_model(FIXTURES / "model")
    generator = torch.Generator().manual_seed(args.seed)
    seeds = [p.read_bytes() for p in sorted(FIXTURES.glob("*.osc"))]  # version 1
    for height, width in ((37, 53), (64, 96), (1, 1), (130, 70)):
        image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
        seeds += [api.compress(model, image, mode=mode) for mode in model.modes]  # version 2
    seeds.append(api.compress(model, torch.randint(0, 256, (1, 20, 30), dtype=torch.uint8, generator=generator)))

    def containers():
        for i in range(args.containers):
            if i % 10 == 0:  # random bytes, sometimes behind a valid magic and version
                tail = rng.randbytes(rng.randrange(0, 96))
                yield rng.choice((b"", b"\x89OSC\x01", b"\x89OSC\x02")) + tail
            else:
                data = mutate(rng, rng.choice(seeds))
                yield _recrc(data) if rng.random() < 0.5 else data

    starts = [len(s) - sum(read_container(s)[0].section_sizes.values()) - 4 for s in seeds]

    def decodes():
        for _ in range(args.decodes):
            which = rng.randrange(len(seeds))
            if rng.random() < 0.75:
                yield _recrc(mutate_payload(rng, seeds[which], starts[which]))
            else:
                yield _recrc(mutate(rng, seeds[which]))

    started = time.time()
    report = {
        "what": "fuzz soak: the .osc reader and the whole decode path of the committed small model",
        "seed": args.seed,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__},
        "seed_streams": len(seeds),
        "container_reader": soak(containers(), read_container, 1.0, (OneStepError,)),
    }
    report["container_reader"]["seconds"] = round(time.time() - started, 1)
    started = time.time()
    report["full_decode"] = soak(decodes(), lambda d: api.decompress(model, d), 20.0, (OneStepError,))
    report["full_decode"]["seconds"] = round(time.time() - started, 1)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    failures = report["container_reader"]["failures"] + report["full_decode"]["failures"]
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1)[:3000])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
