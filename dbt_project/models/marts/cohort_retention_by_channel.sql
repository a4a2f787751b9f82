{{ cohort_retention('acquisition_channel') }}
