"""One module per group of `formdigits` commands: each adds its parsers and runs them."""
