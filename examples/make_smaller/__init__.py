"""make_smaller: the Oropo tutorial's `djpeg | cjpeg` job as a condorkit job (see README.md)."""
