"""The CI/CD files (.github): schema, actionlint and zizmor checks offline, and the repository's own policy."""
