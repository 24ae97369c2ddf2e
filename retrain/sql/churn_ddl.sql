-- The training table the `churn` SQL source reads. Portable across SQLite and PostgreSQL.
-- The retrain job never runs this file (it only reads); local runs, the demo and the tests apply it.
CREATE TABLE IF NOT EXISTS churn_training (
    customer_id VARCHAR(32) PRIMARY KEY,
    tenure_months INTEGER NOT NULL,
    monthly_spend DOUBLE PRECISION NOT NULL,
    satisfaction_score DOUBLE PRECISION,
    engagement_score DOUBLE PRECISION,
    star_rating INTEGER,
    logins_30d INTEGER NOT NULL,
    support_tickets_90d INTEGER NOT NULL,
    campaign_id VARCHAR(32),
    acquisition_date DATE NOT NULL,
    churn SMALLINT NOT NULL
);
