# Two commands: `make dev` runs the service locally, `make test` tests it.
# Nothing but Rust, Python 3 and a shell is needed; the scripts install the rest.
.PHONY: dev test build lint emulator-start emulator-stop fmt reliability bench bench-smoke simulate sam-local sam-local-smoke target-dir-smoke

dev:
	@bash infra/dev.sh

test:
	@bash infra/test.sh

build:
	@bash infra/build.sh

lint:
	@bash infra/lint.sh

bench:
	@bash infra/bench.sh

bench-smoke:
	@bash infra/bench.sh --smoke

simulate:
	@bash infra/simulate.sh

sam-local:
	@bash infra/sam_local.sh

sam-local-smoke:
	@bash infra/sam_local.sh smoke

target-dir-smoke:
	@bash infra/target_dir_smoke.sh

reliability:
	@bash infra/reliability-suite.sh

emulator-start:
	@bash infra/emulator.sh start

emulator-stop:
	@bash infra/emulator.sh stop

fmt:
	cargo fmt --all
