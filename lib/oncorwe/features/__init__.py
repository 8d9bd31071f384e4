"""The feature stage: DuckDB SQL from OMOP tables to one analysis row per line."""
