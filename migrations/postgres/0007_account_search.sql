-- The account search of the operator surfaces (JSON:API filters and sorts over many accounts).
-- Every filterable column has an index. The two text sort keys are indexed by bytes
-- (COLLATE "C", as the store sorts and compares them on both backends) and carry the scope
-- and flag columns and the id, so a sorted, filtered page is an index-only walk; the flag's
-- index counts within a scope.
CREATE INDEX accounts_username ON accounts(username COLLATE "C") INCLUDE (customer_id, allow_external_calls, id);
CREATE INDEX accounts_caller_id_name ON accounts(caller_id_name COLLATE "C") INCLUDE (customer_id, allow_external_calls, id);
CREATE INDEX accounts_allow_external_calls ON accounts(allow_external_calls, customer_id);
CREATE INDEX accounts_internal_caller_id ON accounts(internal_caller_id);
CREATE INDEX accounts_external_caller_id ON accounts(external_caller_id);
