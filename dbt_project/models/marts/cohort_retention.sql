{{ cohort_retention() }}
