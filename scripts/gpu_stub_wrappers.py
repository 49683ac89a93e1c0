"""Stubs the wrappers of tch's generated C API (torch-sys's libtch/torch_api_generated.cpp) that do not compile
against an older libtorch: each failing wrapper's body becomes a throw of "not in this libtorch", so that the rest of
tch builds and runs (lensfind calls none of them). Used by scripts/gpu-check.sh build.

usage: gpu_stub_wrappers.py GENERATED_CPP ERROR_LINES_FILE"""
import sys

path, errs = sys.argv[1], [int(x) for x in open(sys.argv[2]).read().split()]
lines = open(path).read().split("\n")
for e in errs:
    start = e - 1
    while not lines[start].strip().startswith("PROTECT("):
        start -= 1
    end = e - 1
    while lines[end] != "  )":
        end += 1
    lines[start + 1:end] = ['    throw std::runtime_error("not in this libtorch");'] + [""] * (end - start - 2)
open(path, "w").write("\n".join(lines))
print(f"{len(errs)} wrapper lines stubbed", file=sys.stderr)
