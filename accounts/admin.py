from allauth.account.models import EmailAddress
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import Membership, Organization, PhysicianProfile, PracticeInvitation, SpecialistProfile, User


class SpecialistProfileInline(admin.StackedInline):
    model = SpecialistProfile
    fk_name = "user"
    extra = 0
    readonly_fields = ["approved_at", "approved_by"]


class PhysicianProfileInline(admin.StackedInline):
    model = PhysicianProfile
    extra = 0


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "role", "is_active", "specialist_approved", "last_login"]
    list_filter = ["role", "is_active", "is_staff"]
    search_fields = ["email", "name"]
    inlines = [PhysicianProfileInline, SpecialistProfileInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "role")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "role", "password1", "password2")}),)
    actions = ["approve_specialists"]

    def save_model(self, request, obj, form, change):
        """An account made by an administrator is trusted: its email counts as verified."""
        super().save_model(request, obj, form, change)
        if not change:
            EmailAddress.objects.update_or_create(
                user=obj, email=obj.email, defaults={"verified": True, "primary": True}
            )

    @admin.display(boolean=True, description="Approved specialist")
    def specialist_approved(self, user: User) -> bool | None:
        profile = getattr(user, "specialist_profile", None)
        return profile.is_approved if profile else None

    @admin.action(description="Approve selected specialists")
    def approve_specialists(self, request, queryset):
        approved = 0
        for user in queryset.filter(role="specialist"):
            profile, _ = SpecialistProfile.objects.get_or_create(user=user)
            if not profile.is_approved:
                profile.approve(by=request.user)
                approved += 1
        self.message_user(request, f"Approved {approved} specialist(s).", messages.SUCCESS)


@admin.register(SpecialistProfile)
class SpecialistProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "accepting_consults", "time_zone", "approved_at"]
    list_filter = ["accepting_consults"]
    search_fields = ["user__email", "user__name"]
    raw_id_fields = ["user"]
    readonly_fields = ["approved_at", "approved_by"]


@admin.register(PhysicianProfile)
class PhysicianProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "institution", "jurisdiction"]
    search_fields = ["user__email", "institution"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user", "added_by"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """Practices for operators; practice admins use their own page (/practices/<id>/)."""

    list_display = ["name", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(PracticeInvitation)
class PracticeInvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "practice", "role", "invited_by", "created_at", "accepted_at", "revoked_at"]
    search_fields = ["email", "practice__name"]
    readonly_fields = ["token_hash", "accepted_at", "accepted_by"]
    raw_id_fields = ["practice", "invited_by", "accepted_by"]

    def has_add_permission(self, request) -> bool:
        return False  # invitations carry a token sent by email: made on the practice page only
