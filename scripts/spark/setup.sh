#!/usr/bin/env bash
# What `make test-spark` needs besides the project's venv: Java (Debian's openjdk-17-jre-headless, installed with
# apt-get when missing and we can) and .venv-spark with dbt-spark + pyspark (scripts/spark/requirements.txt).
# Idempotent: a second call checks and returns in a moment.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-spark
if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "Java missing: installing Debian's openjdk-17-jre-headless"
    mkdir -p /usr/share/man/man1  # slim images lack it and the JRE's post-install step needs it
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null) \
      || echo "could not install openjdk-17-jre-headless" >&2
  fi
fi
if ! command -v java >/dev/null 2>&1; then
  echo "Java unavailable: Spark cannot run (install a JRE 17, e.g. apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
stamp="$VENV/.requirements-$(sha1sum scripts/spark/requirements.txt | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "Creating $VENV (dbt-spark, pyspark; about 45 s and 480 MB the first time)"
  rm -rf "$VENV"
  # the base interpreter, not the project's venv (make puts .venv/bin first on PATH)
  base=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')/bin/python3
  [ -x "$base" ] || base="$PYTHON"
  "$base" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -r scripts/spark/requirements.txt
  touch "$stamp"
fi
