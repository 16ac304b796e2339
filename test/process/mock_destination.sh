#!/usr/bin/env bash
# Process test: the mock destination's self-test (test/mock/test_mock.sh).
exec bash "$(dirname "$0")/../mock/test_mock.sh"
