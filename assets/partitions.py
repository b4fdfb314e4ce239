from dagster import DynamicPartitionsDefinition

# one partition per registered catalog file (snapshot id = file stem + content digest)
catalog_partitions = DynamicPartitionsDefinition(name="catalog_snapshots")
