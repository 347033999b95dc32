-- Every change to who may be served is announced to the replicas' key caches: a TRUNCATE
-- of consumers (which fires no row or UPDATE trigger) and a rename too. Without these,
-- replicas kept honouring every key after a TRUNCATE until the next change or restart.

CREATE TRIGGER consumers_truncated
    AFTER TRUNCATE ON consumers FOR EACH STATEMENT EXECUTE FUNCTION hotlist_consumers_changed();

DROP TRIGGER consumers_changed ON consumers;
CREATE TRIGGER consumers_changed
    AFTER INSERT OR DELETE OR UPDATE OF name, key_hash, revoked_at, agency_ori, agency_kind
    ON consumers FOR EACH STATEMENT EXECUTE FUNCTION hotlist_consumers_changed();
