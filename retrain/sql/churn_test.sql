-- Data checks run before the query. Each statement must return NO rows; any row it returns stops the
-- job (decision "bad-data", nothing uploaded) and is quoted in the report.

-- Labels are binary.
SELECT customer_id, churn FROM churn_training WHERE churn NOT IN (0, 1);

-- Star ratings are 1..5 when present.
SELECT customer_id, star_rating FROM churn_training WHERE star_rating < 1 OR star_rating > 5;

-- Counts and tenure are never negative.
SELECT customer_id FROM churn_training
WHERE tenure_months < 0 OR logins_30d < 0 OR support_tickets_90d < 0;

-- Scores are on their 0..100 scale.
SELECT customer_id FROM churn_training
WHERE satisfaction_score < 0 OR satisfaction_score > 100 OR engagement_score < 0 OR engagement_score > 100;
