# The two commands of the README:  make run  and  make test.
.PHONY: run test check lint typecheck prompts clean

run:
	@scripts/setup
	.venv/bin/ivr run

test:
	@scripts/setup --test
	scripts/in-netns .venv/bin/python -m pytest -q -p no:cacheprovider --durations=25

lint:
	@scripts/setup --test
	.venv/bin/ruff check media ivr softphone tests scripts bench

typecheck:
	@scripts/setup --test
	.venv/bin/mypy media ivr softphone

check: lint typecheck test

prompts:
	@scripts/setup
	.venv/bin/python scripts/build_prompts.py

clean:
	rm -rf .venv var *.egg-info
