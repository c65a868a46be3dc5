-- Start-up reads the latest audit events of a few kinds (learned context
-- windows held or forgotten: state/overflows.py); without this index each
-- such read scans the whole audit log, which is kept for good.
CREATE INDEX audit_event_ts ON audit (event, ts);
