"""Plain SQL migrations, applied in order by `fedgrid db migrate`."""
