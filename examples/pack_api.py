"""Pack a repository from Python and print what did not make it in, and why.

Run from anywhere: python examples/pack_api.py PATH
"""

import sys

import wholerepo

result = wholerepo.pack(sys.argv[1] if len(sys.argv) > 1 else ".", budget=200_000)
print(f"{result.prompt_tokens} tokens (exact, {result.tokenizer}) of {result.budget}")
for f in result.skipped:
    print(f"skipped {f.path}: {f.reason}")
