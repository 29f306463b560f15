"""AnalyticDB for PostgreSQL with vector engine optimisation: the knowledge-base vector store
when `db.dbType: adb`. Reachable from the stack's VPC only; the chat pod reads the connection
from a Kubernetes Secret (`PG_HOST`, `PG_PORT`, `PG_DATABASE`, `PG_USER`, `PG_PASSWORD`).
"""

from __future__ import annotations

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import StackConfig
from components.contract import ADB_PORT
from components.network import Network


class VectorDatabase(pulumi.ComponentResource):
    """ADB PostgreSQL instance (vector optimised), account, database and the PG_* Secret."""

    host: pulumi.Output[str]
    port: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    instance_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        network: Network,
        provider: k8s.Provider,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:database:VectorDatabase", name, None, opts)
        adb = cfg.db.adb
        # Sizing (>= 4C16G, segment steps, ESSD) is validated with the rest of the config.
        category = "HighAvailability" if cfg.production else "Basic"

        child = pulumi.ResourceOptions(parent=self)
        instance = alicloud.gpdb.Instance(
            f"{name}-adb",
            engine="gpdb",
            engine_version=adb.engine_version,
            db_instance_mode="StorageElastic",
            db_instance_category=category,
            instance_spec=adb.instance_spec,
            seg_node_num=adb.seg_node_num,
            seg_storage_type=adb.seg_storage_type,
            storage_size=adb.storage_size,
            vector_configuration_status="enabled",
            payment_type="PayAsYouGo",
            instance_network_type="VPC",
            vpc_id=network.vpc_id,
            vswitch_id=network.vswitch_ids[0],
            zone_id=network.zones[0],
            # The VPC only: nodes and (Terway) pods have VPC addresses; nothing outside it.
            ip_whitelists=[{"ip_group_name": "vpc", "security_ip_list": network.vpc_cidr}],
            ssl_enabled=1 if cfg.production else 0,  # the API takes 0/1
            create_sample_data=False,
            description=f"chatchat {cfg.stack} knowledge-base vectors",
            tags=cfg.resource_tags(),
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.production),
        )

        password = random.RandomPassword(
            f"{name}-password",
            length=32,
            special=True,
            override_special="!#%^*-_+=",
            min_lower=2,
            min_upper=2,
            min_numeric=2,
            min_special=2,
            opts=child,
        )
        account = alicloud.gpdb.Account(
            f"{name}-account",
            db_instance_id=instance.id,
            account_name=adb.account_name,
            account_password=password.result,
            account_type="Normal",
            account_description="chatchat application",
            opts=child,
        )
        database = alicloud.gpdb.Database(
            f"{name}-database",
            db_instance_id=instance.id,
            database_name=adb.database_name,
            owner=account.account_name,
            character_set_name="UTF8",
            description="chatchat knowledge-base vectors",
            opts=child,
        )

        self.instance_id = instance.id
        self.host = instance.connection_string
        self.port = instance.port.apply(lambda p: str(p or ADB_PORT))
        pg_password: pulumi.Output[str] = pulumi.Output.secret(password.result)
        secret = k8s.core.v1.Secret(
            f"{name}-pg",
            metadata={"name": f"{cfg.release}-pg", "namespace": namespace},
            string_data={
                "PG_HOST": self.host,
                "PG_PORT": self.port,
                "PG_DATABASE": database.database_name,
                "PG_USER": account.account_name,
                "PG_PASSWORD": pg_password,
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.secret_name = secret.metadata["name"]
        self.register_outputs(
            {"host": self.host, "port": self.port, "secretName": self.secret_name}
        )
