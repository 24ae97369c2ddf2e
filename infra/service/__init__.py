"""The model service: stage and prod on ECS Fargate behind a load balancer and a web firewall."""
