"""Report templates chosen by modality and body part: the fields, and the standard templates every
installation starts with (CT chest, CT head, MR brain, MR musculoskeletal, MRI knee, chest
radiograph, US abdomen, skin photo and a generic one). Signed reports keep the signer's
credentials as they stood at signing."""

from django.db import migrations, models

HEAD = ["HEAD", "BRAIN", "SKULL", "CRANIUM", "CRANIAL", "NEUROCRANIUM"]
CHEST = ["CHEST", "THORAX", "THORACIC", "LUNG", "LUNGS", "CHESTABDOMEN", "CHESTABDPELVIS"]
JOINTS = [
    "SHOULDER",
    "HIP",
    "ANKLE",
    "ELBOW",
    "WRIST",
    "HAND",
    "FOOT",
    "EXTREMITY",
    "ARM",
    "LEG",
    "FOREARM",
    "THIGH",
    "FEMUR",
    "TIBIA",
    "HUMERUS",
    "FINGER",
    "TOE",
    "KNEE",
]
ABDOMEN = [
    "ABDOMEN",
    "ABDOMINAL",
    "ABDOMENPELVIS",
    "LIVER",
    "GALLBLADDER",
    "PANCREAS",
    "SPLEEN",
    "KIDNEY",
    "KIDNEYS",
    "RENAL",
    "UPPERABDOMEN",
]

TEMPLATES = [
    {
        "name": "CT head",
        "specialty": "neuroradiology",
        "modality": "CT",
        "body_parts": HEAD,
        "findings": (
            "Brain parenchyma: \n"
            "Grey-white matter differentiation: \n"
            "Ventricles and sulci: \n"
            "Extra-axial spaces: no collection.\n"
            "Haemorrhage: none.\n"
            "Midline shift: none.\n"
            "Skull and scalp: \n"
            "Visualised sinuses and mastoids: "
        ),
    },
    {
        "name": "CT chest",
        "specialty": "chest",
        "modality": "CT",
        "body_parts": CHEST,
        "findings": (
            "Technique: CT of the chest, with / without intravenous contrast.\n"
            "Lungs and airways: \n"
            "Nodules: none.\n"
            "Pleura: no effusion, no pneumothorax.\n"
            "Mediastinum and hila: no enlarged lymph nodes.\n"
            "Heart and great vessels: \n"
            "Chest wall and bones: \n"
            "Upper abdomen (as included): "
        ),
    },
    {
        "name": "MR brain",
        "specialty": "neuroradiology",
        "modality": "MR",
        "body_parts": HEAD,
        "findings": (
            "Technique: sequences \n"
            "Brain parenchyma: \n"
            "Diffusion: no restricted diffusion.\n"
            "Haemorrhage and susceptibility: none.\n"
            "Ventricles and extra-axial spaces: \n"
            "Posterior fossa: \n"
            "Flow voids: \n"
            "Orbits, sinuses and mastoids: "
        ),
    },
    {
        "name": "MRI knee",
        "specialty": "musculoskeletal",
        "modality": "MR",
        "body_parts": ["KNEE"],
        "findings": (
            "Menisci: medial \u2014 ; lateral \u2014 .\n"
            "Cruciate ligaments: ACL \u2014 ; PCL \u2014 .\n"
            "Collateral ligaments: MCL \u2014 ; LCL \u2014 .\n"
            "Extensor mechanism: \n"
            "Cartilage: \n"
            "Bone marrow: \n"
            "Joint fluid and synovium: "
        ),
    },
    {
        "name": "MR musculoskeletal",
        "specialty": "musculoskeletal",
        "modality": "MR",
        "body_parts": [part for part in JOINTS if part != "KNEE"],
        "findings": (
            "Joint or region: \n"
            "Bones and bone marrow: \n"
            "Cartilage: \n"
            "Tendons: \n"
            "Ligaments: \n"
            "Muscles: \n"
            "Joint fluid and synovium: \n"
            "Soft tissues: "
        ),
    },
    {
        "name": "Chest radiograph",
        "specialty": "chest",
        "modality": "CR",
        "body_parts": CHEST,
        "findings": (
            "Projection: PA / AP.\n"
            "Lines and tubes: none.\n"
            "Lungs: \n"
            "Pleura: no effusion, no pneumothorax.\n"
            "Heart and mediastinum: \n"
            "Bones and soft tissues: "
        ),
    },
    {
        "name": "US abdomen",
        "specialty": "abdominal",
        "modality": "US",
        "body_parts": ABDOMEN,
        "findings": (
            "Liver: size, echotexture, focal lesions.\n"
            "Gallbladder and bile ducts: \n"
            "Pancreas: \n"
            "Spleen: \n"
            "Kidneys: right \u2014 ; left \u2014 .\n"
            "Aorta and IVC: \n"
            "Free fluid: none."
        ),
    },
    {
        "name": "Skin photo",
        "specialty": "dermatology",
        "modality": "XC",
        "body_parts": [],
        "findings": ("Site: \nSize: \nMorphology: \nColour and pigment network: \nBorder: \nDermoscopic features: "),
    },
    {
        "name": "Generic",
        "specialty": "general_radiology",
        "modality": "",
        "body_parts": [],
        "findings": "Technique: \nComparison: none available.\nFindings: ",
    },
]
# Templates 0002 created: kept (and their text left as an installation may have edited it), given
# their modality and body parts here.
EARLIER = {"CT head", "Chest radiograph", "MRI knee", "Skin photo"}


def seed(apps, schema_editor):
    ReportTemplate = apps.get_model("consultations", "ReportTemplate")
    for spec in TEMPLATES:
        fields = {"impression": "", "recommendations": "", **spec}
        template, created = ReportTemplate.objects.get_or_create(name=spec["name"], defaults=fields)
        if not created and not template.body_parts:
            template.body_parts = spec["body_parts"]
            template.save(update_fields=["body_parts"])


def unseed(apps, schema_editor):
    ReportTemplate = apps.get_model("consultations", "ReportTemplate")
    ReportTemplate.objects.filter(name__in=[t["name"] for t in TEMPLATES if t["name"] not in EARLIER]).delete()


class Migration(migrations.Migration):
    dependencies = [("consultations", "0005_colleague_invitations")]

    operations = [
        migrations.AddField(
            model_name="report",
            name="signer_credentials",
            field=models.JSONField(
                blank=True, default=dict, help_text="The signer's name, specialties and licences when they signed"
            ),
        ),
        migrations.AddField(
            model_name="reporttemplate",
            name="body_parts",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="BodyPartExamined values (or words of the study description) it is written for, "
                'e.g. ["CHEST", "THORAX", "LUNG"]; empty: any body part',
            ),
        ),
        migrations.AlterField(
            model_name="reporttemplate",
            name="modality",
            field=models.CharField(
                blank=True, help_text="DICOM modality, e.g. CT, MR, CR, XC; empty: any modality", max_length=16
            ),
        ),
        migrations.RunPython(seed, unseed),
    ]
