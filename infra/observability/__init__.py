"""Alerts (the SNS topics, dead-letter alarms) and the dashboards and alarms over service and jobs."""
