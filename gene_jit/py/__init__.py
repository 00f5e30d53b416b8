"""Python from Gene: `py/*` (`gene_api`), and how Python objects behave in Gene
(`objects`: members, methods, printing, Python exceptions as Gene errors)."""
