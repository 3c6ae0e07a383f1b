"""Separable Gaussian blur vs torchaug 0.3.3's full 2-D kernel, measured in the same run.

Usage: python benchmarks/blur.py [--batch 4] [--frames 8] [--size 224] [--kernel 23]
       [--repeats 5] [--device cpu|cuda] [--threads 1]

Prints the median time of each implementation, their ratio, the multiply-add ratio
(k^2 / 2k) and the largest output difference, for a float batch (B, T, 3, S, S) in [0, 1]
blurred with one sigma per sample drawn from [0.1, 2.0] (the recipe's blur with p = 1).
"""

import argparse
import statistics
import time

import torch
from sce_builtins.transforms.blur import separable_gaussian_blur
from torchaug.batch_transforms.functional import batch_gaussian_blur


def _time(fn, x, sigma, repeats: int, device: str) -> float:
    fn(x, sigma)  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(x, sigma)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--kernel", type=int, default=23)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    k = args.kernel
    x = torch.rand(args.batch, args.frames, 3, args.size, args.size, device=args.device)
    sigma = torch.empty(args.batch, device=args.device).uniform_(0.1, 2.0)

    def full2d(v, s):
        return batch_gaussian_blur(v, [k, k], s)

    def separable(v, s):
        return separable_gaussian_blur(v, k, s)

    diff = (full2d(x, sigma) - separable(x, sigma)).abs().max().item()
    t2d = _time(full2d, x, sigma, args.repeats, args.device)
    tsep = _time(separable, x, sigma, args.repeats, args.device)
    print(f"device={args.device} threads={args.threads} batch={tuple(x.shape)} kernel={k}")
    print(f"torchaug 2-D   : {t2d * 1e3:9.1f} ms  ({k * k} multiply-adds / pixel)")
    print(f"separable      : {tsep * 1e3:9.1f} ms  ({2 * k} multiply-adds / pixel)")
    print(f"speed-up       : {t2d / tsep:9.2f}x  (arithmetic ratio {k * k / (2 * k):.1f}x)")
    print(f"max |diff|     : {diff:.2e}")


if __name__ == "__main__":
    main()
