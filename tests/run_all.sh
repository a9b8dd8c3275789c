#!/usr/bin/env bash
# Install the test dependencies and run every check and test suite: ruff, mypy, eslint,
# prettier, stylelint, pytest, jest and Galata.
# Usage (from a fresh clone): bash tests/run_all.sh        Exit status: non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "Galata needs Chromium: install it (Debian: sudo apt-get install chromium)" \
      "or set CHROMIUM_PATH" >&2
    exit 1
  fi
fi

# A virtual environment of the tests' own (.venv, made if missing) unless one is active: the
# machine's Python may hold a stale labextension link or an older install of this package.
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

# Python package (editable, with the labextension built and linked) and test dependencies.
# An editable install writes install.json through the labextension link into the built
# labextension; a second install in the same checkout would then add it twice (hatchling).
rm -f jupyter_env_manager/labextension/install.json
python -m pip install -q -e ".[test]"
jupyter labextension develop . --overwrite >/dev/null

echo "== lint: ruff, mypy, eslint/prettier/stylelint"
ruff check .
ruff format --check .
mypy
jlpm install --immutable >/dev/null
jlpm lint:check

echo "== pytest"
python -m pytest -q -p no:cacheprovider

echo "== jest"
jlpm test

echo "== galata"
(cd ui-tests && jlpm install --immutable >/dev/null && jlpm playwright test)
