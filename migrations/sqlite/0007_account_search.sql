-- The account search of the operator surfaces (JSON:API filters and sorts over many accounts).
-- Every filterable column has an index. The two text sort keys carry the scope and flag
-- columns too, so a sorted, filtered page walks one index without reading whole rows (SQLite
-- indexes hold the rowid, the tie-breaker, already); the flag's index counts within a scope.
CREATE INDEX accounts_username ON accounts(username, customer_id, allow_external_calls);
CREATE INDEX accounts_caller_id_name ON accounts(caller_id_name, customer_id, allow_external_calls);
CREATE INDEX accounts_allow_external_calls ON accounts(allow_external_calls, customer_id);
CREATE INDEX accounts_internal_caller_id ON accounts(internal_caller_id);
CREATE INDEX accounts_external_caller_id ON accounts(external_caller_id);
