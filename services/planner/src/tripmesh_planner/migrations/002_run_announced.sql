-- A run is "announced" once finalize has published PlanChanged and the terminal event. The
-- sweeper re-checks finished runs that are not, so a crash between the version write and
-- those publishes is repaired even when no message is left to redeliver.
ALTER TABLE "{schema}".runs ADD COLUMN announced_at timestamptz;
UPDATE "{schema}".runs SET announced_at = finished_at WHERE state = 'finished';
CREATE INDEX runs_unannounced ON "{schema}".runs (finished_at)
    WHERE state = 'finished' AND announced_at IS NULL;
