-- Databases beside the metadata store: the warehouse and Dagster's storage.
CREATE DATABASE warehouse OWNER headwater;
CREATE DATABASE dagster OWNER headwater;
