"""The Python half of `make reliability`'s fuzzing run (infra/reliability.sh).

The shell script brings up the emulator and the dev server and runs schemathesis; these
modules do the rest, each run as `python -m reliability.<module>` with infra/ on
PYTHONPATH:

- keys:     the run's API keys and secret canaries, as .local/reliability/work/keys.json
- seed:     rows for GET/PATCH/credentials/restore/DELETE to find, before each run
- hooks:    the schemathesis hooks file (SCHEMATHESIS_HOOKS=reliability.hooks)
- hostile:  the hand-written requests schemathesis does not generate (wire.py sends and
            checks them)
- summary:  schemathesis.txt, junit-hostile.xml and the last line
- cleanup:  removes this run's table, bus and secrets from an emulator it reused

helpers.py holds the pure functions (standard library only, tested by test_helpers.py).
"""
