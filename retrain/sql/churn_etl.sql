-- The training rows for the churn model. One SELECT; the ORDER BY makes the result (and so its
-- sha256, which decides whether a re-run is a no-op) independent of the database's row order.
SELECT
    tenure_months,
    monthly_spend,
    satisfaction_score,
    engagement_score,
    star_rating,
    logins_30d,
    support_tickets_90d,
    campaign_id,
    acquisition_date,
    churn
FROM churn_training
ORDER BY acquisition_date, customer_id;
