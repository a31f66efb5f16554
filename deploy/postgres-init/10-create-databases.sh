#!/bin/sh
# Creates the platform's databases, owned by POSTGRES_USER: Dagster's instance storage and MLflow's backend store.
# The postgres image runs this once, on the first start with an empty data volume (/docker-entrypoint-initdb.d);
# it is executable, so it runs in its own shell rather than being sourced. Running it again changes nothing.
# RARE_TRIAGE_PG_DATABASES lists the names (space-separated); they are identifiers, not secrets.
set -eu

for db in ${RARE_TRIAGE_PG_DATABASES:-dagster mlflow}; do
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres --set db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', current_user)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
done
