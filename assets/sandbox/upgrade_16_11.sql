-- Rewind sandbox: what GitLab 16.11.0's migrations leave behind in a database that was at
-- 16.10.3 (schema version 20240410123456) before `gitlab-ctl reconfigure` ran
-- `db:migrate` and it failed part-way: new tables, a new column on an existing table, a new
-- index, new partitions, and the `schema_migrations` rows of the migrations that finished.
-- Applied by `rewind_engine::sandbox::apply_failed_upgrade` in one transaction.

-- 20240417093215 CreateZoektReplicas
CREATE TABLE zoekt_replicas (
    id bigserial PRIMARY KEY,
    zoekt_enabled_namespace_id bigint,
    namespace_id bigint NOT NULL,
    state smallint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);
CREATE INDEX index_zoekt_replicas_on_namespace_id_and_state ON zoekt_replicas USING btree (namespace_id, state);

-- 20240418101500 CreateMlModelMetadata (project_id is a loose foreign key: no constraint,
-- so a restore of the 16.10.3 dump can drop and recreate `projects` around it)
CREATE TABLE ml_model_metadata (
    id bigserial PRIMARY KEY,
    model_id bigint NOT NULL,
    project_id bigint NOT NULL,
    name text NOT NULL,
    value text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT check_36240c80a7 CHECK ((char_length(name) <= 255)),
    CONSTRAINT check_6f1a4e27ed CHECK ((char_length(value) <= 5000))
);
CREATE UNIQUE INDEX index_ml_model_metadata_on_model_id_and_name ON ml_model_metadata USING btree (model_id, name);

-- 20240419082037 AddDuoFeaturesEnabledToProjects
ALTER TABLE projects ADD COLUMN duo_features_enabled boolean DEFAULT true NOT NULL;

-- 20240422142000 AddIndexIssuesOnProjectIdAndClosedAt
CREATE INDEX index_issues_on_project_id_and_closed_at ON issues USING btree (project_id, closed_at);

-- 20240423064716 CreateAuditEventsPartition202406 (partition manager run during the upgrade)
CREATE TABLE gitlab_partitions_dynamic.audit_events_202406 PARTITION OF audit_events
    FOR VALUES FROM ('2024-06-01 00:00:00+00') TO ('2024-07-01 00:00:00+00');

INSERT INTO zoekt_replicas (namespace_id, state, created_at, updated_at)
SELECT id, 0, '2024-04-25 09:00:00+00', '2024-04-25 09:00:00+00' FROM namespaces ORDER BY id LIMIT 5;

INSERT INTO schema_migrations (version, finished_at) VALUES
    ('20240417093215', '2024-04-25 09:00:01+00'),
    ('20240418101500', '2024-04-25 09:00:02+00'),
    ('20240419082037', '2024-04-25 09:00:03+00'),
    ('20240422142000', '2024-04-25 09:00:04+00'),
    ('20240423064716', '2024-04-25 09:00:05+00');

-- 20240424120000 BackfillDuoFeaturesEnabled failed (see `failed_migrate_log`): its row is
-- absent and later migrations never ran.
