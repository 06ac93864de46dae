"""The offline quickstart: fine-tune SmolLM2-135M-Instruct on BBC News topics and show it learned."""
