#!/usr/bin/env bash
# Installs a CUDA 13.0 build toolkit from NVIDIA's PyPI wheels, enough to build vox with `--features cuda` on a
# machine with no GPU, no driver and no system CUDA (Debian main has no nvcc):
#   - nvcc, ptxas, cicc/libdevice, the runtime/CRT/CCCL headers: candle-kernels compiles its .cu files to PTX
#     and a static libmoe.a with them (cudaforge);
#   - libcudart, libcublas(Lt), libcurand, libnvrtc: candle-core turns on cudarc's `dynamic-linking`, so the
#     final link needs these .so files (the binary records their sonames: libcublas.so.13, libcurand.so.10, ...);
#   - lib/stubs/libcuda.so: a stub of the driver library (soname libcuda.so.1) made here from the function
#     names in cudarc's own bindings, because libcuda ships only with the driver. It satisfies the linker only;
#     at run time the real driver's libcuda.so.1 is loaded.
# Versions match the GPU machines vox is checked on (nvcc 13.0, driver 580). Wheels are pinned by version and
# sha256; they land in .cache/cuda/wheels (removed after unpacking unless VOX_KEEP_WHEELS=1), the toolkit
# (1 GB) in DEST. Idempotent. Never commit either.
#
#   tools/setup/cuda.sh [DEST]   # default DEST: .cache/cuda/13.0 of this source tree; prints DEST
#
# Then build (CUDA_COMPUTE_CAP picks the SASS/PTX target, 90 = Hopper; cudarc reads the CUDA version from
# `nvcc --version`; on a 2-core machine put DEST/fastbin first on PATH to skip the GGUF kernels, ~1 h of ptxas):
#   export CUDA_ROOT=$DEST PATH=$DEST/bin:$PATH CUDA_COMPUTE_CAP=90
#   cargo build --release -p vox-cli --features cuda --target-dir target-cuda
# Running the result needs the driver plus libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10
# and libnvrtc.so.13 on the loader path (a CUDA 13 toolkit's lib64, or a torch cu130 venv's nvidia/cu13/lib).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${1:-$root/.cache/cuda/13.0}"
if [ -x "$dest/bin/nvcc" ] && [ -f "$dest/lib/stubs/libcuda.so" ] && [ -x "$dest/fastbin/nvcc" ]; then
  echo "$dest"
  exit 0
fi
python="${VOX_PYTHON:-python3}"
wheels="$root/.cache/cuda/wheels"
mkdir -p "$wheels"
req="$(mktemp)"
trap 'rm -f "$req"' EXIT
cat >"$req" <<'EOF'
nvidia-cuda-nvcc==13.0.88 --hash=sha256:56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03
nvidia-nvvm==13.0.88 --hash=sha256:c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0
nvidia-cuda-crt==13.0.88 --hash=sha256:2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cccl==13.0.85 --hash=sha256:e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649
nvidia-cuda-nvrtc==13.0.88 --hash=sha256:ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
nvidia-curand==10.4.0.35 --hash=sha256:1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc
nvidia-cublas==13.0.2.14 --hash=sha256:0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c
EOF
"$python" -m pip --disable-pip-version-check -q download --no-deps --only-binary=:all: --require-hashes \
  --python-version 3.11 --implementation cp \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
  -r "$req" -d "$wheels"

# Unpack every wheel's nvidia/cu13/ tree into a fresh DEST.part (zipfile keeps the exec bits through
# external_attr), then rename, so a killed run leaves nothing that looks installed.
tmp="$dest.part"
rm -rf "$tmp"
mkdir -p "$tmp"
"$python" - "$tmp" "$wheels" "$req" <<'PY'
import os, sys, zipfile
tmp, wheels, req = sys.argv[1:]
lines = [line.split()[0] for line in open(req) if line.strip()]
names = [n.replace("-", "_") + "-" + v for n, v in (line.split("==") for line in lines)]
files = os.listdir(wheels)
prefix = "nvidia/cu13/"
for name in names:
    whl = next(f for f in files if f.startswith(name + "-") and "x86_64" in f)
    with zipfile.ZipFile(os.path.join(wheels, whl)) as z:
        for info in z.infolist():
            if not info.filename.startswith(prefix) or info.is_dir() or "/.metadata/" in info.filename:
                continue
            if ".alt." in info.filename or "libnvblas" in info.filename:
                continue  # not needed to build, 220 MB
            out = os.path.join(tmp, info.filename[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(info) as src, open(out, "wb") as dst:
                dst.write(src.read())
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(out, mode or 0o644)
PY
chmod +x "$tmp"/bin/* "$tmp"/nvvm/bin/* 2>/dev/null || true
# The layout nvcc.profile, cudarc (lib64, lib/stubs) and cudaforge (lib64) expect, plus the unversioned
# names that `-lcublas` etc. look for.
ln -sfn lib "$tmp/lib64"
for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
  ln -sfn "$so" "$tmp/lib/${so%.so.*}.so"
done

# libcuda stub: one function per driver entry point that cudarc can call, each answering
# CUDA_ERROR_NO_DEVICE (100), so that a binary run against the stub (LD_LIBRARY_PATH=DEST/lib/stubs, with a
# libcuda.so.1 link) behaves as on a machine without a GPU instead of crashing.
lock_version="$(awk '/^name = "cudarc"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' "$root/Cargo.lock")"
(cd "$root" && cargo fetch --locked -q)
sys_rs="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$lock_version"/src/driver/sys/mod.rs | head -n1)"
mkdir -p "$tmp/lib/stubs"
grep -oP '^pub unsafe fn \Kcu\w+' "$sys_rs" | sort -u | sed 's/.*/int &(void) { return 100; }/' >"$tmp/lib/stubs/libcuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$tmp/lib/stubs/libcuda.so" "$tmp/lib/stubs/libcuda_stub.c"
rm "$tmp/lib/stubs/libcuda_stub.c"

# The largest libraries are needed only for their symbols at link time: replace them with stubs of the same
# soname and versioned symbols (the binary then asks for exactly what the real libraries export), 850 MB less.
stub_so() { # stub_so LIB: each function LIB exports, as a stub that answers an error code
  local lib="$1" soname dir ver
  dir="$(dirname "$lib")"
  soname="$(objdump -p "$lib" | awk '/SONAME/ {print $2}')"
  ver="$(objdump -T "$lib" | awk '$2 == "g" && $3 == "DF" && $(NF-1) == "'"$soname"'" {print $NF}' | sort -u)"
  printf '%s\n' $ver | sed 's/.*/int &(void) { return 999; }/' >"$dir/stub.c"
  printf '%s { global: *; };\n' "$soname" >"$dir/stub.map"
  cc -shared -fPIC -Wl,-soname,"$soname" -Wl,--version-script,"$dir/stub.map" -o "$lib.stub" "$dir/stub.c"
  rm "$dir/stub.c" "$dir/stub.map"
  mv "$lib.stub" "$lib"
}
if [ "${VOX_REAL_CUDA_LIBS:-0}" != 1 ]; then
  for so in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do stub_so "$tmp/lib/$so"; done
  rm -f "$tmp"/lib/libnvrtc-builtins* "$tmp/lib/libnvvm.so.4"
fi

# fastbin/nvcc: the same compiler minus candle-kernels' GGUF kernels, for slow build machines (see its comment).
mkdir -p "$tmp/fastbin"
cat >"$tmp/fastbin/nvcc" <<'NVCC'
#!/usr/bin/env bash
# nvcc for slow build machines (tools/setup/cuda.sh; used by tools/device/prepare.sh when VOX_CUDA_FAST=1).
# candle-kernels compiles llama.cpp-style GGUF kernels into a static libmoe.a; on 2 cores each MMQ instance takes
# 5+ minutes (cicc + ptxas). vox runs no GGUF kernels, so:
#   - src/mmq_gguf/mmq_instance_<q>.cu becomes a host object whose launch_mmq_gguf_<q> aborts with a message;
#   - the other MoE/GGUF files get PTX (JIT-compiled by the driver if ever launched) instead of SASS.
# Everything else passes through unchanged.
real="$(dirname "$0")/../bin/nvcc"
out=""
prev=""
for a in "$@"; do
  [ "$prev" = "-o" ] && out="$a"
  prev="$a"
done
for a in "$@"; do
  case "$a" in
    *mmq_instance_*.cu)
      q="$(basename "$a" .cu)"; q="${q#mmq_instance_}"
      printf '#include <stdio.h>\n#include <stdlib.h>\nvoid launch_mmq_gguf_%s(void) { fputs("vox: GGUF MMQ kernels were not built (cuda.sh fastbin)\\n", stderr); abort(); }\n' "$q" |
        cc -x c -fPIC -O2 -c -o "$out" -
      exit $? ;;
    *moe_*.cu | *mmvq_gguf.cu | *mmq_quantize.cu)
      args=()
      for b in "$@"; do args+=("${b//code=sm_/code=compute_}"); done
      exec "$real" "${args[@]}" ;;
  esac
done
exec "$real" "$@"
NVCC
chmod +x "$tmp/fastbin/nvcc"

"$tmp/bin/nvcc" --version | grep -q 'release 13.0' || { echo "nvcc in $tmp is not CUDA 13.0" >&2; exit 1; }
rm -rf "$dest"
mv "$tmp" "$dest"
# The toolkit is all that is needed from here on; the wheels (650 MB) come back with a rerun after `rm -r DEST`.
[ "${VOX_KEEP_WHEELS:-0}" = 1 ] || rm -rf "$wheels"
echo "$dest"
