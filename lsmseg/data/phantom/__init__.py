"""Synthetic L3 CT phantom: axial slices at the third lumbar vertebra with exact ground truth.

Each slice is drawn from a patient (sex, age, height, weight) so that fat and muscle follow the
body habitus: subcutaneous fat thickens with BMI (more in women), visceral fat grows with BMI and
age (more in men), muscle size follows sex, height and age, muscle attenuation falls with age and
BMI (myosteatosis), trabecular bone density falls with age.

Geometry and orientation:
    ``hu`` and ``mask`` are (H, W) arrays in the normalised orientation of
    :class:`lsmseg.io.ctslice.CTSlice`: rows run from anterior to posterior, columns from the
    patient's right to left (radiological display). The field of view is drawn so that the body
    fits with a margin, between 307 and 486 mm, i.e. 0.6 to 0.95 mm pixels at ``size=512``; other
    sizes keep the field of view, so their pixels are ``512 / size`` times larger. Spacing is
    isotropic in-plane.

Anatomy (from outside in): air (-1000 HU), a curved CT table under the back that never touches
the body, a 1-2.5 mm skin line, subcutaneous fat with the superficial (Scarpa's) fascia, the
abdominal wall muscles (rectus abdominis pair separated by the linea alba, the three oblique
layers separated by thin fat planes, latissimus posteriorly), the erector spinae pair, psoas and
quadratus lumborum pairs, the L3 vertebra (cortical shell, trabecular body, canal with thecal sac,
pedicles, laminae, transverse and spinous processes), aorta, IVC and mesenteric vessels (with
optional venous or arterial contrast), kidneys' lower poles, an optional liver tip, colon with
stool and gas, small-bowel loops (fluid, oral contrast, gas with air-fluid levels, collapsed) and
the visceral fat between them. CT blur (partial volume) and correlated noise (10-20 HU, higher
for larger patients) are added last.

Labels (``lsmseg.keys.Tissue``) and the truth, as the readout sees them:
    * SAT: subcutaneous fat between the skin line and the muscle fascia. Every SAT pixel has HU
      in ``ADIPOSE_HU`` (-190..-30).
    * VAT: fat inside the abdominal wall (intra- and retroperitoneal). Every VAT pixel has HU in
      ``VAT_HU_DEFAULT`` (-150..-50).
    * MUSCLE: the muscle compartment, intramuscular fat included (fat blobs, the fat planes
      between the oblique layers). Every compartment pixel has HU in -190..150, so it is either
      muscle-HU (``MUSCLE_HU``, -29..150) or IMAT (``ADIPOSE_HU``).
    * BACKGROUND: everything else: air, table, skin, fascia, bone, canal, vessels, organs, bowel.

    The truth areas are computed from the final HU, mask and spacing exactly as the Alberta
    refinement of a perfect segmentation would (:func:`truth_areas`): muscle = compartment
    pixels in -29..150, IMAT = compartment pixels in -190..-30, SAT and VAT = their label counts.
    HU values are integers (as stored in DICOM), so the two HU ranges split the compartment
    without a gap and the truth survives a DICOM or NIfTI round trip exactly.

Modules: :mod:`~lsmseg.data.phantom.anatomy` (patient, body habitus, outlines),
:mod:`~lsmseg.data.phantom.canvas` (tissue kinds, the grid), :mod:`~lsmseg.data.phantom.body`
(body wall, muscles, spine, table), :mod:`~lsmseg.data.phantom.viscera` (the cavity),
:mod:`~lsmseg.data.phantom.render` (one slice: painting, HU texture, truth) and
:mod:`~lsmseg.data.phantom.cohort` (a cohort on disk, written through :mod:`lsmseg.io`).
"""

from lsmseg.data.phantom.anatomy import generate_patient
from lsmseg.data.phantom.cohort import (
    PATIENT_COLUMNS,
    TRUTH_COLUMNS,
    cohort_case_id,
    cohort_slice,
    write_cohort,
)
from lsmseg.data.phantom.render import (
    FOV_RANGE_MM,
    HU_MAX,
    HU_MIN,
    REFERENCE_SIZE,
    PhantomSlice,
    generate_slice,
    truth_areas,
)

__all__ = [
    "FOV_RANGE_MM",
    "HU_MAX",
    "HU_MIN",
    "PATIENT_COLUMNS",
    "REFERENCE_SIZE",
    "TRUTH_COLUMNS",
    "PhantomSlice",
    "cohort_case_id",
    "cohort_slice",
    "generate_patient",
    "generate_slice",
    "truth_areas",
    "write_cohort",
]
