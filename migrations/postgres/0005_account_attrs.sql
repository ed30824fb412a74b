-- Operator attributes of a SIP account, shown by the operator surfaces (/api/v1, the
-- telecom.center JSON:API and the telecomx /sip listing), plus the public id those surfaces use
-- and the SIP password sealed with the server's AEAD key (NULL for accounts created before it
-- was kept; such passwords are not recoverable until the next change).
ALTER TABLE accounts ADD COLUMN public_id TEXT;
ALTER TABLE accounts ADD COLUMN password_sealed TEXT;
ALTER TABLE accounts ADD COLUMN caller_id_name TEXT;
ALTER TABLE accounts ADD COLUMN internal_caller_id BIGINT;
ALTER TABLE accounts ADD COLUMN external_caller_id BIGINT;
ALTER TABLE accounts ADD COLUMN allow_external_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN use_allowed_ips BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN incoming_internal BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN incoming_external BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN outgoing_internal BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN outgoing_external BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN on_demand BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN name TEXT;
ALTER TABLE accounts ADD COLUMN rate_plan TEXT;
ALTER TABLE accounts ADD COLUMN rate_plan_name TEXT;
ALTER TABLE accounts ADD COLUMN new_rate_plan TEXT;
ALTER TABLE accounts ADD COLUMN connection TEXT;
ALTER TABLE accounts ADD COLUMN ip_address TEXT;
ALTER TABLE accounts ADD COLUMN port BIGINT;
ALTER TABLE accounts ADD COLUMN countries TEXT;
ALTER TABLE accounts ADD COLUMN failover TEXT;
ALTER TABLE accounts ADD COLUMN always_failover BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN usage_block BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN pbx BIGINT;
ALTER TABLE accounts ADD COLUMN high_rate BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN international BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN address TEXT;
ALTER TABLE accounts ADD COLUMN parent_sip_account TEXT;
ALTER TABLE accounts ADD COLUMN notes TEXT;
ALTER TABLE accounts ADD COLUMN custom TEXT;
ALTER TABLE accounts ADD COLUMN sip_server TEXT;
ALTER TABLE accounts ADD COLUMN clip_sa BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN strip_dk_country_code BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN prefix_mobile_originated BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN invoiced_until BIGINT;
ALTER TABLE accounts ADD COLUMN default_number TEXT;
ALTER TABLE accounts ADD COLUMN always_default_number BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN always_secret_number BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN billing_customer BIGINT;

UPDATE accounts SET public_id = gen_random_uuid()::text;
CREATE UNIQUE INDEX accounts_public_id ON accounts(public_id);
-- Listings sort by these within a customer.
CREATE INDEX accounts_customer_username ON accounts(customer_id, username);
