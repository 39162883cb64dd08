-- An agent outcome is "announced" once its agent_completed / agent_failed event is out. The
-- engine announces a round's unannounced outcomes before resuming it (a replica may have died
-- between storing a result and announcing it), and a redelivered result is not announced twice
-- - which, outside JetStream's duplicate window, would append a second event.
ALTER TABLE "{schema}".agent_executions ADD COLUMN announced_at timestamptz;
UPDATE "{schema}".agent_executions SET announced_at = finished_at
    WHERE status IN ('completed', 'failed');
