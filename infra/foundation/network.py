"""The VPC: public subnets for the load balancers and NAT, private subnets for every task and build."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.lib import iam


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    availability_zones: list[str]
    nat_gateways: int
    log_retention_days: int
    region: str
    account_id: pulumi.Input[str]


def subnet_cidrs(vpc_cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Split the VPC into 16 equal blocks: public from the first, private from the ninth.

    Leaves room to add AZs (up to 8) without renumbering, and gives private subnets (where Fargate
    tasks each take an ENI) the same size as public ones.
    """
    blocks = list(ipaddress.IPv4Network(vpc_cidr).subnets(prefixlen_diff=4))
    return [str(b) for b in blocks[:az_count]], [str(b) for b in blocks[8 : 8 + az_count]]


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ml-delivery:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            aws.ec2.VpcArgs(cidr_block=args.cidr, enable_dns_hostnames=True, enable_dns_support=True),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", aws.ec2.InternetGatewayArgs(vpc_id=self.vpc.id), opts=child)
        public_cidrs, private_cidrs = subnet_cidrs(args.cidr, len(args.availability_zones))

        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            aws.ec2.RouteTableArgs(
                vpc_id=self.vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            ),
            opts=child,
        )
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        private_route_tables: list[aws.ec2.RouteTable] = []
        nat_gateways: list[aws.ec2.NatGateway] = []
        for index, zone in enumerate(args.availability_zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{index}",
                aws.ec2.SubnetArgs(
                    vpc_id=self.vpc.id,
                    cidr_block=public_cidrs[index],
                    availability_zone=zone,
                    # Only the ALB and NAT gateways live here, and they get their own addresses; nothing
                    # launched into these subnets should get a public IP by default.
                    map_public_ip_on_launch=False,
                    tags={"tier": "public"},
                ),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-rta",
                aws.ec2.RouteTableAssociationArgs(subnet_id=public.id, route_table_id=public_rt.id),
                opts=child,
            )
            self.public_subnets.append(public)
            if index < args.nat_gateways:
                eip = aws.ec2.Eip(f"{name}-nat-{index}-eip", aws.ec2.EipArgs(domain="vpc"), opts=child)
                nat_gateways.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{index}",
                        aws.ec2.NatGatewayArgs(allocation_id=eip.id, subnet_id=public.id),
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )
        for index, zone in enumerate(args.availability_zones):
            private = aws.ec2.Subnet(
                f"{name}-private-{index}",
                aws.ec2.SubnetArgs(
                    vpc_id=self.vpc.id,
                    cidr_block=private_cidrs[index],
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={"tier": "private"},
                ),
                opts=child,
            )
            # With fewer NAT gateways than AZs (dev), AZs share one; prod has one per AZ so an AZ outage
            # does not cut the others' egress.
            nat = nat_gateways[index % len(nat_gateways)]
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{index}-rt",
                aws.ec2.RouteTableArgs(
                    vpc_id=self.vpc.id,
                    routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                ),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rta",
                aws.ec2.RouteTableAssociationArgs(subnet_id=private.id, route_table_id=route_table.id),
                opts=child,
            )
            self.private_subnets.append(private)
            private_route_tables.append(route_table)

        # Gateway endpoint: S3 traffic (models, payload capture, ECR image layers) stays off the NAT
        # gateways, which is cheaper and keeps it on the AWS network (VPC User Guide, "Gateway endpoints
        # for Amazon S3").
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            aws.ec2.VpcEndpointArgs(
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{args.region}.s3",
                vpc_endpoint_type="Gateway",
                route_table_ids=[rt.id for rt in private_route_tables],
            ),
            opts=child,
        )

        flow_log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            aws.cloudwatch.LogGroupArgs(
                name=f"/ml-delivery/{pulumi.get_stack()}/vpc-flow-logs",
                retention_in_days=args.log_retention_days,
            ),
            opts=child,
        )
        # Permissions from the VPC User Guide, "IAM role for publishing flow logs to CloudWatch Logs",
        # scoped to this one log group instead of "*"; the group is created here, so CreateLogGroup is not
        # needed. DescribeLogGroups is in the guide's list and the service calls it (issue #12, defect 10);
        # the Service Authorization Reference (CloudWatch Logs) gives it no resource type, so it is on "*"
        # (policy/exceptions.yaml).
        flow_role = iam.role(
            f"{name}-flow-logs-role",
            service="vpc-flow-logs.amazonaws.com",
            account_id=args.account_id,
            statements=[
                iam.allow(
                    ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    [flow_log_group.arn, flow_log_group.arn.apply(lambda arn: f"{arn}:*")],
                    sid="WriteFlowLogs",
                ),
                iam.allow(["logs:DescribeLogGroups"], ["*"], sid="DescribeLogGroups"),
            ],
            parent=self,
            description="VPC flow logs delivery to CloudWatch Logs",
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            aws.ec2.FlowLogArgs(
                vpc_id=self.vpc.id,
                traffic_type="ALL",
                log_destination_type="cloud-watch-logs",
                log_destination=flow_log_group.arn,
                iam_role_arn=flow_role.arn,
                max_aggregation_interval=60,
            ),
            opts=child,
        )
        self.vpc_id = self.vpc.id
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "privateSubnetIds": self.private_subnet_ids,
                "publicSubnetIds": self.public_subnet_ids,
            }
        )
