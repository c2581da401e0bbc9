//! The AWS half of [`crate::kinds::route_table`]: reading its objects back, creating,
//! updating and deleting them.

use crate::cloud::aws::{AwsProvider, Discovery};
use crate::cloud::ec2::{self, Ec2, Select};
use crate::cloud::kinds::common::{discovered, gone_ok, sorted_strs, Seen};
use crate::cloud::provider::CreateRequest;
use crate::cloud::wait::{self, Probe};
use crate::cloud::CloudError;
use crate::kinds::common::{BadAttr, Want};
use crate::types::ResourceKind;
use crate::world::{Attrs, ObservedResource, Tags, Value};
use aws_sdk_ec2::types::RouteTable as AwsRouteTable;
use std::collections::{BTreeMap, BTreeSet};

pub struct RouteTable;

impl super::AwsKind for RouteTable {
    aws_operations!(existing "ec2:route_table" => describe_route_tables.route_table_id);
}

async fn observe(aws: &AwsProvider, pass: &Discovery) -> Result<Vec<ObservedResource>, CloudError> {
    let tables = aws
        .ec2
        .describe_route_tables(Select::Env(pass.env()))
        .await?;
    Ok(discovered(&tables, seen, ResourceKind::RouteTable))
}

async fn update(
    aws: &AwsProvider,
    current: &ObservedResource,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<ObservedResource, CloudError> {
    let (address, id) = (&current.address, current.id.as_str());
    converge(aws, &Want { address, attrs }, id).await?;
    aws.retag_and_read_ec2(current, tags, || async {
        Ok(read(aws, id).await?.as_ref().and_then(seen))
    })
    .await
}

/// The routes drctl manages: every route but the implicit `local` one,
/// destination → target.
fn table_routes(table: &AwsRouteTable) -> BTreeMap<String, String> {
    table
        .routes()
        .iter()
        .filter(|r| r.gateway_id() != Some("local"))
        .filter_map(|r| {
            let destination = r
                .destination_cidr_block()
                .or(r.destination_ipv6_cidr_block())
                .or(r.destination_prefix_list_id())?;
            let target = r
                .gateway_id()
                .or(r.nat_gateway_id())
                .or(r.transit_gateway_id())
                .or(r.vpc_peering_connection_id())
                .or(r.egress_only_internet_gateway_id())
                .or(r.network_interface_id())
                .or(r.instance_id())?;
            Some((destination.to_string(), target.to_string()))
        })
        .collect()
}

/// Explicit subnet associations: subnet → association id.
fn table_associations(table: &AwsRouteTable) -> BTreeMap<String, String> {
    table
        .associations()
        .iter()
        .filter(|a| !a.main().unwrap_or(false))
        .filter_map(|a| {
            Some((
                a.subnet_id()?.to_string(),
                a.route_table_association_id()?.to_string(),
            ))
        })
        .collect()
}

fn seen(table: &AwsRouteTable) -> Option<Seen> {
    let routes = table_routes(table)
        .into_iter()
        .map(|(destination, gateway)| {
            Value::Table(BTreeMap::from([
                ("destination".to_string(), Value::Str(destination)),
                ("gateway".to_string(), Value::Str(gateway)),
            ]))
        })
        .collect();
    let subnets = table_associations(table);
    Some(
        Seen::with_id(table.route_table_id()?, ec2::tag_map(table.tags()))
            .attr("vpc", Value::Str(table.vpc_id().unwrap_or_default().into()))
            .attr("routes", Value::List(routes))
            .attr("subnets", sorted_strs(subnets.keys().map(String::as_str))),
    )
}

async fn read(aws: &AwsProvider, id: &str) -> Result<Option<AwsRouteTable>, CloudError> {
    let ids = [id.to_string()];
    Ok(aws
        .ec2
        .describe_route_tables(Select::Ids(&ids))
        .await?
        .into_iter()
        .next())
}

async fn create(
    aws: &AwsProvider,
    req: &CreateRequest<'_>,
) -> Result<ObservedResource, CloudError> {
    let want = Want::new(req.address, req.attrs);
    let id = aws
        .ec2
        .create_route_table(want.str("vpc")?, req.tags)
        .await?;
    converge(aws, &want, &id).await?;
    aws.read_back(req.address, &id, || async {
        Ok(read(aws, &id).await?.as_ref().and_then(seen))
    })
    .await
}

/// Makes the table's routes and subnet associations exactly the wanted ones.
async fn converge(aws: &AwsProvider, want: &Want<'_>, id: &str) -> Result<(), CloudError> {
    let routes = want.routes()?;
    let subnets: BTreeSet<String> = want.strs("subnets")?.into_iter().collect();
    let table = wait::until(
        &format!("route table {id} to become visible"),
        aws.waits.visibility,
        aws.waits.backoff,
        || async {
            Ok(match read(aws, id).await? {
                Some(t) => Probe::Done(t),
                None => Probe::Waiting("not found yet".into()),
            })
        },
    )
    .await?;
    let current_routes = table_routes(&table);
    let current_subnets = table_associations(&table);

    for (destination, gateway) in &routes {
        match current_routes.get(destination) {
            None => {
                aws.settle(&format!("route {destination} in {id}"), || {
                    aws.ec2.create_route(id, destination, gateway)
                })
                .await?
            }
            Some(now) if now != gateway => {
                aws.settle(&format!("route {destination} in {id}"), || {
                    aws.ec2.replace_route(id, destination, gateway)
                })
                .await?
            }
            Some(_) => {}
        }
    }
    for destination in current_routes.keys().filter(|d| !routes.contains_key(*d)) {
        gone_ok(aws.ec2.delete_route(id, destination).await)?;
    }

    for subnet in subnets.iter().filter(|s| !current_subnets.contains_key(*s)) {
        associate(aws, id, subnet).await?;
    }
    for (subnet, association) in &current_subnets {
        if !subnets.contains(subnet) {
            gone_ok(aws.ec2.disassociate_route_table(association).await)?;
        }
    }
    Ok(())
}

/// Associates `subnet` with `table`, moving it over if another table
/// (e.g. the copy this one replaces) holds it.
async fn associate(aws: &AwsProvider, table: &str, subnet: &str) -> Result<(), CloudError> {
    let what = format!("associate {subnet} with {table}");
    match aws
        .settle(&what, || aws.ec2.associate_route_table(table, subnet))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("Resource.AlreadyAssociated") => {
            let holders = aws.ec2.route_tables_of_subnet(subnet).await?;
            let association = holders
                .iter()
                .flat_map(|t| t.associations())
                .find(|a| a.subnet_id() == Some(subnet))
                .and_then(|a| a.route_table_association_id())
                .ok_or(e)?;
            aws.ec2
                .replace_route_table_association(association, table)
                .await
        }
        Err(e) => Err(e),
    }
}

async fn delete(aws: &AwsProvider, current: &ObservedResource) -> Result<(), CloudError> {
    let id = current.id.as_str();
    let Some(table) = read(aws, id).await? else {
        return Ok(());
    };
    for association in table_associations(&table).values() {
        gone_ok(aws.ec2.disassociate_route_table(association).await)?;
    }
    aws.patiently(&format!("delete {id}"), || aws.ec2.delete_route_table(id))
        .await
}

impl Want<'_> {
    /// `routes`: destination → gateway.
    pub(crate) fn routes(&self) -> Result<BTreeMap<String, String>, BadAttr> {
        self.list("routes")?
            .iter()
            .map(|item| {
                let t = item.as_table()?;
                Some((
                    t.get("destination")?.as_str()?.to_string(),
                    t.get("gateway")?.as_str()?.to_string(),
                ))
            })
            .collect::<Option<_>>()
            .ok_or_else(|| self.bad("routes", "a list of { destination, gateway }"))
    }
}
