#!/usr/bin/env bash
# The README's test command. It is `cargo test --locked`, run so that the suites that drive a
# real Docker engine run side by side instead of one after another:
#
#   1. `cargo test --locked --no-run` builds every test target once;
#   2. each test binary then runs on its own (cwd = the crate root, as cargo runs them), up to
#      SCALE_TEST_JOBS at a time (default 2), the longest suites first; a binary's output is
#      printed whole when it ends, so the log reads like cargo's;
#   3. the doctests run last (`cargo test --locked --doc`);
#   4. the closing line counts every test: `tests: N passed, M failed`.
#
# Any argument is passed to each test binary (a name filter, `--nocapture`, ...). The exit
# status is 1 when a test failed or a binary crashed. Suites share one engine safely: each
# test uses its own project name and random host ports, and cleans up by label.
set -uo pipefail
cd "$(dirname "$0")/.."

jobs="${SCALE_TEST_JOBS:-2}"
logs="$(mktemp -d /tmp/scale-tests.XXXXXX)"
trap 'rm -rf "$logs"' EXIT

# tests/graph.rs draws every stage's DOT with Graphviz's `dot` and fails without it: install
# Debian's package when it is missing (as root), as the Docker tests make the base image.
if ! command -v dot >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests: installing graphviz (dot) for the graph tests"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null ||
      echo "tests: could not install graphviz; tests/graph.rs will fail and say so" >&2
  else
    echo "tests: Graphviz's dot is missing (apt-get install graphviz); tests/graph.rs will fail" >&2
  fi
fi

# tests/ui_docker.rs opens `scale ui` in headless Chromium and fails without it: the same.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests: installing chromium for the live page's browser test"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
      echo "tests: could not install chromium; tests/ui_docker.rs will fail and say so" >&2
  else
    echo "tests: Chromium is missing (apt-get install chromium); tests/ui_docker.rs will fail" >&2
  fi
fi

echo "tests: building every test target"
if ! cargo test --locked --no-run --message-format=json-render-diagnostics >"$logs/build.json"; then
  echo "tests: the build failed" >&2
  exit 1
fi

# Test executables, from cargo's own account of what it built.
mapfile -t binaries < <(grep '"profile":{[^}]*"test":true' "$logs/build.json" |
  grep -o '"executable":"[^"]*"' | sed 's/"executable":"\(.*\)"/\1/' | sort -u)
if [ "${#binaries[@]}" -eq 0 ]; then
  echo "tests: cargo built no test binary" >&2
  exit 1
fi

# The slowest suites start first, so the long ones overlap instead of ending the run alone.
slow="swarm_docker ladder stories stage07_docker stage08_docker stage09_docker stage10_docker stage11_docker stages_cache_cdn crash_docker many_containers rollout_docker
cluster_docker reseed_docker failover_docker migrate_docker lock_docker ci_docker compose_docker
interrupt_docker engine_docker apply_docker volumes_docker stage01 engine_errors ui_docker"
name_of() { basename "$1" | sed 's/-[0-9a-f]*$//'; }
ordered=()
for s in $slow; do
  for b in "${binaries[@]}"; do [ "$(name_of "$b")" = "$s" ] && ordered+=("$b"); done
done
for b in "${binaries[@]}"; do
  case " $(echo $slow) " in *" $(name_of "$b") "*) ;; *) ordered+=("$b") ;; esac
done

export CARGO_MANIFEST_DIR="$PWD"
export CARGO_BIN_EXE_scale="$PWD/target/debug/scale"

run_one() {
  local bin="$1" name start status
  shift
  name="$(basename "$bin")"
  start=$(date +%s)
  "$bin" "$@" >"$logs/$name.log" 2>&1
  status=$?
  {
    echo "     Running $(name_of "$bin") ($name: $(($(date +%s) - start)) s, exit $status)"
    cat "$logs/$name.log"
  } >"$logs/$name.done"
  echo "$status" >"$logs/$name.status"
}

running=0
for bin in "${ordered[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
  for done in "$logs"/*.done; do
    [ -e "$done" ] || continue
    cat "$done"
    rm "$done"
  done
  run_one "$bin" "$@" &
  running=$((running + 1))
done
wait
for done in "$logs"/*.done; do
  [ -e "$done" ] || continue
  cat "$done"
  rm "$done"
done

echo "     Running doctests"
cargo test --locked --doc 2>&1 | tee "$logs/doctests.log"
doc_status=${PIPESTATUS[0]}
echo "$doc_status" >"$logs/doctests.status"

passed=0
failed=0
crashed=()
for log in "$logs"/*.log; do
  [ "$(basename "$log")" = "build.json" ] && continue
  while read -r p f; do
    passed=$((passed + p))
    failed=$((failed + f))
  done < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$log")
done
for status in "$logs"/*.status; do
  name="$(basename "$status" .status)"
  [ "$(cat "$status")" = "0" ] || crashed+=("$name")
done

if [ "${#crashed[@]}" -gt 0 ]; then
  echo "tests: these suites failed: ${crashed[*]}"
fi
echo "tests: $passed passed, $failed failed"
[ "${#crashed[@]}" -eq 0 ] && [ "$failed" -eq 0 ]
