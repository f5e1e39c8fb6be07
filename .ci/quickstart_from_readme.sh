#!/usr/bin/env bash
# Run the README's quickstart exactly as written: the commands in the ```bash block between the
# markers <!-- quickstart:begin --> and <!-- quickstart:end --> of README.md, from the repository root.
# Then check that it did what the README promises: a printed mAP and a drawn image.
set -euo pipefail
cd "$(dirname "$0")/.."

script=$(awk '/<!-- quickstart:begin -->/{inside=1; next} /<!-- quickstart:end -->/{inside=0}
              inside && /^```bash/{code=1; next} inside && /^```/{code=0} code' README.md)
if [ -z "$script" ]; then
    echo "quickstart: no commands found between the README's quickstart markers" >&2
    exit 1
fi
echo "== README quickstart:"; echo "$script"; echo "=="

log=$(mktemp)
start=$(date +%s)
bash -euo pipefail -c "$script" 2>&1 | tee "$log"
echo "== quickstart took $(( $(date +%s) - start )) s"

grep -Eq "mAP" "$log" || { echo "quickstart: no mAP was printed" >&2; exit 1; }
ls output/*_detections.jpg > /dev/null || { echo "quickstart: no drawn image in output/" >&2; exit 1; }
