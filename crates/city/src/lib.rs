//! Loads and validates a city folder (city.toml, categories, agencies, jurisdictions, sensor sites).
