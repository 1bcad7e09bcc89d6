"""A causal Transformer language model on the PTB sample (the course's hw4 extension).

Run: python examples/transformer_language_model.py
"""

from __future__ import annotations

from lstm_language_model import main

if __name__ == "__main__":
    main(seq_model="transformer")
