"""The `m2x` command: run the stack, run one component, manage accounts."""
