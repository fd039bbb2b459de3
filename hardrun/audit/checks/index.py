"""Which check modules and rules judge each kind: generated from the rule files and
the check modules by `python -m hardrun.audit.rules` (tests/audit/test_rule_index.py
fails when it is stale). `checks.load` imports a kind's modules from here, so that
auditing a Dockerfile never imports the run or image checks."""

# kind -> (the check modules that judge it, the ids of its rules with a check)
KINDS = {
    'dockerfile': (('build', 'build_practices'), (
        'HR1001', 'HR1002', 'HR1003', 'HR1004', 'HR1005', 'HR1006', 'HR1007', 'HR1008',
        'HR1009', 'HR1010', 'HR1011', 'HR1012', 'HR1013', 'HR1014', 'HR1015', 'HR1016',
        'HR1017', 'HR1018', 'HR1019', 'HR1020', 'HR1021', 'HR1022', 'HR1023', 'HR1024',
        'HR1025', 'HR1026', 'HR1027', 'HR1028', 'HR1029', 'HR1030', 'HR1031', 'HR1032',
        'HR1033', 'HR1034', 'HR1035',
    )),
    'compose': (('policy', 'run', 'seccomp_profile'), (
        'HR2001', 'HR2002', 'HR2003', 'HR2004', 'HR2005', 'HR2006', 'HR2007', 'HR2008',
        'HR2009', 'HR2010', 'HR2011', 'HR2012', 'HR2013', 'HR2014', 'HR2015', 'HR2016',
        'HR2017', 'HR2018', 'HR2019', 'HR2020', 'HR2021', 'HR2030', 'HR3001', 'HR3002',
        'HR3003', 'HR3004', 'HR3005', 'HR3006', 'HR3008', 'HR3009', 'HR3010',
    )),
    'kubernetes': (('policy', 'run'), (
        'HR2001', 'HR2002', 'HR2003', 'HR2004', 'HR2005', 'HR2006', 'HR2007', 'HR2008',
        'HR2009', 'HR2010', 'HR2011', 'HR2012', 'HR2013', 'HR2014', 'HR2016', 'HR2017',
        'HR2018', 'HR2019', 'HR3001', 'HR3002', 'HR3003', 'HR3004', 'HR3005', 'HR3006',
        'HR3007', 'HR3008', 'HR3009', 'HR3010',
    )),
    'docker-run': (('policy', 'run', 'seccomp_profile'), (
        'HR2001', 'HR2002', 'HR2003', 'HR2004', 'HR2005', 'HR2006', 'HR2007', 'HR2008',
        'HR2009', 'HR2010', 'HR2011', 'HR2012', 'HR2013', 'HR2014', 'HR2015', 'HR2016',
        'HR2017', 'HR2018', 'HR2019', 'HR2020', 'HR2021', 'HR2030', 'HR3001', 'HR3002',
        'HR3003', 'HR3004', 'HR3005', 'HR3006', 'HR3008', 'HR3009', 'HR3010',
    )),
    'oci': (('policy', 'run', 'seccomp_profile'), (
        'HR2001', 'HR2002', 'HR2003', 'HR2005', 'HR2006', 'HR2007', 'HR2008', 'HR2009',
        'HR2010', 'HR2011', 'HR2012', 'HR2014', 'HR2015', 'HR2016', 'HR2020', 'HR2021',
        'HR2030', 'HR3001', 'HR3002', 'HR3003', 'HR3004', 'HR3005', 'HR3006', 'HR3008',
        'HR3009', 'HR3010',
    )),
    'hardrun': (('policy', 'run', 'seccomp_profile'), (
        'HR2001', 'HR2002', 'HR2003', 'HR2005', 'HR2006', 'HR2007', 'HR2008', 'HR2009',
        'HR2010', 'HR2011', 'HR2012', 'HR2013', 'HR2014', 'HR2015', 'HR2016', 'HR2017',
        'HR2018', 'HR2019', 'HR2020', 'HR2021', 'HR2030', 'HR3001', 'HR3002', 'HR3003',
        'HR3004', 'HR3005', 'HR3006', 'HR3008', 'HR3009', 'HR3010',
    )),
    'image': (('image',), (
        'HR4001', 'HR4002', 'HR4003', 'HR4004', 'HR4005', 'HR4006', 'HR4007', 'HR4008',
        'HR4009', 'HR4010', 'HR4011', 'HR4012', 'HR4013', 'HR4014',
    )),
}

# model -> its kinds
MODELS = {
    'build': ('dockerfile',),
    'run': ('compose', 'kubernetes', 'docker-run', 'oci', 'hardrun'),
    'image': ('image',),
}
