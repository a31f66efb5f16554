"""Pure logic of the platform, no Dagster: `lib/<domain>/` mirrors `defs/<domain>/` name for name.

The core every domain may use sits at this level: `schema` (column contracts), `identifiers` (the direct
identifiers of a source row), `paths` (local state folder), `lake_fs` (local or S3 filesystems).
"""
