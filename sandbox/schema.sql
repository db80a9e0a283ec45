-- Schema of the Nexus COS platform database, as the platform creates it.
-- Applied by sandbox/up.sh on every run (as role nexus, psql ON_ERROR_STOP),
-- so every statement here must be idempotent.
--
-- No feature flags are inserted: the flags are the deployer's to set, and a
-- fresh sandbox must show what a fresh platform shows (an empty flag table).

CREATE TABLE IF NOT EXISTS nexus_feature_flags (
    key        text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL
);
